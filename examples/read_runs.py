from runpoint import query

store = query.open_root("runpoint")
for run in query.list_runs(store, project="quickstart", where=["params.training.learning_rate > 1e-4"]):
    history = query.metric_history(store, run.id, "train/loss")
    print(run.id, run.status.value, len(history), "points, last", history.values[-1])
