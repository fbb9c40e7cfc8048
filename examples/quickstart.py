import math

import runpoint as rp

with rp.init(project="quickstart", config={"training": {"learning_rate": 3e-4}}, tags=["example"]) as run:
    for step in range(1000):
        loss = math.exp(-step / 200)              # stands in for your training step
        run.log({"train/loss": loss}, step=step)  # returns in microseconds; a thread stores it
    run.summary["best/loss"] = loss
# leaving the block marks the run "completed"; an exception marks it "failed" with the traceback
