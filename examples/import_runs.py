from runpoint.importers import mlflow, tensorboard

# every run under a TensorBoard logdir, and every run of an MLflow tracking store
print("tensorboard:", tensorboard.import_runs("runpoint/mirrored", root="imported", project="from-tb"))
print("mlflow:", mlflow.import_runs("sqlite:///mlflow.db", root="imported"))
