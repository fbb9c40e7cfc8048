"""SIGKILL while logging as fast as possible loses at most about one flush interval and leaves the store readable."""

from __future__ import annotations

import mmap
import random
import struct
import time

from runpoint import query
from runpoint.store import RunStatus

from .conftest import start_script, wait_for_line

FLUSH_INTERVAL = 0.5  # the default, the README's promise
SCHEDULING_SLACK = 0.25  # a loaded machine may run the writer thread late; not part of the mechanism

# The child shares with the test, through a file it maps, the wall time of its last
# finished log call and the longest write its writer has done (so the bound is checked
# against what this machine did, not a guess).
LOGGER = """
import mmap, struct, time, runpoint as rp
run = rp.init(project="p", id="victim", flush_interval={interval})
with open("shared.bin", "r+b") as f:
    shared = mmap.mmap(f.fileno(), 16)
writer = run._writer
pack, clock = struct.pack_into, time.time
print("ready", flush=True)
step = 0
while True:
    run.log({{"loss": 1.0 / (step + 1), "step_copy": float(step)}}, step=step)
    pack("dd", shared, 0, clock(), writer.longest_write_s)
    step += 1
"""


def test_sigkill_at_full_logging_speed_loses_at_most_an_interval_and_one_write(tmp_path, root, store_at) -> None:
    (tmp_path / "shared.bin").write_bytes(bytes(16))
    proc = start_script(tmp_path, root, LOGGER.format(interval=FLUSH_INTERVAL))
    wait_for_line(proc, "ready")
    time.sleep(random.uniform(1.5, 3.0))
    proc.kill()
    proc.wait(10)
    with open(tmp_path / "shared.bin", "rb") as f:
        last_call, longest_write = struct.unpack("dd", mmap.mmap(f.fileno(), 16, access=mmap.ACCESS_READ)[:16])

    store = store_at()
    assert store._conn().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    loss = store.read_metric("victim", "loss")
    copy = store.read_metric("victim", "step_copy")
    steps = loss.steps.tolist()
    assert len(steps) > 1000
    assert steps == list(range(len(steps)))            # a prefix: nothing missing in between
    assert copy.steps.tolist() == steps                 # both keys of a call landed together
    assert copy.values.tolist() == [float(s) for s in steps]
    lost = last_call - loss.times[-1]
    # the documented bound: a flush interval plus the duration of one write
    assert lost <= FLUSH_INTERVAL + longest_write + SCHEDULING_SLACK, (lost, longest_write)
    assert store.metric_stats("victim")["loss"].count == len(steps)
    assert query.resolve_run(store, "victim").status is RunStatus.CRASHED
