"""SIGKILL at random instants of a save loop: the latest checkpoint always loads and verifies.

A child saves a 4 MiB state over and over (keeping the last two, so deletions get killed
too), each save filling the tensors with its step. The test kills it at a random instant,
then opens the directory as the next start would: leftovers are gone, the latest
checkpoint verifies and holds exactly the state of its step, the latest step never goes
back, and (with a run) the registry matches the files. Repeated many times.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint
from runpoint.store import checkpoint_registry
from runpoint.store.sqlite import SQLiteStore

from ._zygote import shared_torch_zygote

SAVER = """
import os, torch, runpoint as rp
state = {{"w": torch.zeros(1 << 20), "b": torch.zeros(7, dtype=torch.float64), "meta": {{"step": -1}}}}
if {with_run}:
    run = rp.init(project="p", id={run_id!r}, resume={resume!r}, console=False)
    ckpt = rp.CheckpointManager(run, keep_last=2, async_save={async_save})
else:
    ckpt = rp.CheckpointManager({directory!r}, keep_last=2, async_save={async_save})
step = ckpt.restore(state) or 0
print("start", step, flush=True)
while True:
    state["w"].fill_(step)
    state["b"].fill_(-step)
    state["meta"]["step"] = step
    ckpt.save(step, state)
    step += 1
"""


def _leftovers(directory) -> list[str]:
    return [name for name in os.listdir(directory) if name.startswith(".")]


@pytest.mark.parametrize("async_save, with_run", [(False, False), pytest.param(True, True, marks=pytest.mark.slow)],
                         ids=["sync-dir", "async-run"])
def test_the_latest_checkpoint_survives_sigkill_at_any_instant(tmp_path, async_save, with_run) -> None:
    zygote = shared_torch_zygote()
    root = tmp_path / "runpoint"
    directory = root / "p" / "victim" / "checkpoints" if with_run else tmp_path / "ckpts"
    env = {"RUNPOINT_ROOT": str(root), "RUNPOINT_HEARTBEAT_TIMEOUT": "60"}
    rng = random.Random()
    previous = -1
    kills = 14
    for attempt in range(kills):
        first = attempt == 0
        code = SAVER.format(with_run=with_run, run_id="victim" if first else None, resume=None if first else "victim",
                            async_save=async_save, directory=str(directory))
        log = tmp_path / f"attempt{attempt}.txt"
        pid = zygote.spawn(code, log, env=env, cwd=tmp_path)
        deadline = time.monotonic() + 30
        while not log.exists() or "start" not in log.read_text():
            assert time.monotonic() < deadline and "Error" not in (log.read_text() if log.exists() else ""), \
                log.read_text() if log.exists() else "no output"
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))  # somewhere inside some save: writing, fsync, rename, retention
        os.kill(pid, signal.SIGKILL)
        assert zygote.wait(pid) == -signal.SIGKILL

        # the next start
        if with_run:
            with rp.init(project="p", resume="victim", root=root, console=False) as run:
                _check_next_start(rp.CheckpointManager(run, keep_last=2), directory, previous, root)
        else:
            _check_next_start(rp.CheckpointManager(directory, keep_last=2), directory, previous, None)
        latest = rp.CheckpointManager(directory).latest
        previous = latest.step if latest is not None else previous
    assert previous > 0, "no save ever completed"


def _check_next_start(ckpt, directory, previous, root) -> None:
    assert _leftovers(directory) == []
    latest = ckpt.latest
    if latest is None:
        assert previous == -1
        return
    assert latest.step >= previous
    state = {"w": torch.empty(1 << 20), "b": torch.empty(7, dtype=torch.float64), "meta": {}}
    assert ckpt.restore(state) == latest.step + 1
    assert state["meta"] == {"step": latest.step}
    assert bool((state["w"] == latest.step).all()) and bool((state["b"] == -latest.step).all())
    results = verify_checkpoint(directory)
    assert results and all(r.ok for r in results), [r.problems for r in results]
    assert (directory / "latest").read_text().strip() == latest.name
    if root is not None:  # with a run: the registry was reconciled with the files
        store = SQLiteStore(root / "runpoint.db")
        try:
            registered = [r.step for r in checkpoint_registry(store).list_checkpoints("victim")]
        finally:
            store.close()
        assert registered == [c.step for c in ckpt.list()]
