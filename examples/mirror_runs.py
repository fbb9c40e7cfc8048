import runpoint as rp
from runpoint.sinks import MLflowSink, WandbSink

# runpoint stays the source of truth; each sink gets a copy on its own thread
sinks = ["tensorboard", MLflowSink(tracking_uri="sqlite:///mlflow.db"), WandbSink(mode="offline")]
with rp.init(project="mirrored", config={"optimizer": {"lr": 3e-4}}, sinks=sinks) as run:
    for step in range(100):
        run.log({"train/loss": 1 / (step + 1)}, step=step)
print((run.dir / "external.json").read_text())  # ids and links of the external runs
