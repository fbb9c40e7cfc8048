"""SIGKILL while logging loses at most the last flush interval and leaves the store readable."""

from __future__ import annotations

import random
import time

from runpoint import query
from runpoint.store import RunStatus

from .conftest import start_script, wait_for_line

LOGGER = """
import time, runpoint as rp
run = rp.init(project="p", id="victim")
print("ready", flush=True)
step = 0
while True:
    run.log({"loss": 1.0 / (step + 1), "step_copy": float(step)}, step=step)
    step += 1
    if step % 50 == 0:
        time.sleep(0.001)
"""


def test_sigkill_loses_at_most_the_last_second_and_the_store_stays_consistent(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, LOGGER)
    wait_for_line(proc, "ready")
    time.sleep(random.uniform(1.5, 3.0))
    killed_at = time.time()
    proc.kill()
    proc.wait(10)

    store = store_at()
    assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    loss = store.read_metric("victim", "loss")
    copy = store.read_metric("victim", "step_copy")
    steps = loss.steps.tolist()
    assert len(steps) > 1000
    assert steps == list(range(len(steps)))            # a prefix: nothing missing in between
    assert copy.steps.tolist() == steps                 # both keys of a call landed together
    assert copy.values.tolist() == [float(s) for s in steps]
    assert killed_at - loss.times[-1] < 1.0             # the writer flushes every 0.5 s
    assert store.metric_stats("victim")["loss"].count == len(steps)
    assert query.resolve_run(store, "victim").status is RunStatus.CRASHED
