"""SIGTERM or SIGUSR1 during training: the state of the last completed step is saved, the
process exits, and the run ends "killed"; a resume continues from that step."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from ._zygote import shared_torch_zygote

TRAINER = """
import time, torch, runpoint as rp
if {with_run}:
    run = rp.init(project="p", id="r1", console=False)
    ckpt = rp.CheckpointManager(run, async_save={async_save}, keep_last=2)
else:
    ckpt = rp.CheckpointManager("ckpts", async_save={async_save}, keep_last=2)
w = torch.zeros(10_000)
done = {{"step": -1}}
ckpt.save_on_preemption(lambda: (done["step"], {{"w": w, "step": done["step"]}}) if done["step"] >= 0 else None)
step = 0
while True:
    w.fill_(step)
    done["step"] = step
    if step % 50 == 0:
        ckpt.save(step, {{"w": w, "step": step}})
    print("step", step, flush=True)
    step += 1
    time.sleep(0.002)
"""


def _last_step(log) -> int:
    if not log.exists():
        return -1
    text = log.read_text()
    complete = text[: text.rfind("\n") + 1]  # the child may be half way through writing a line
    steps = [int(line.split()[1]) for line in complete.splitlines() if line.startswith("step ")]
    return steps[-1] if steps else -1


@pytest.mark.parametrize("signum, with_run, async_save", [
    (signal.SIGTERM, True, False), (signal.SIGUSR1, True, True), (signal.SIGTERM, False, False),
], ids=["sigterm-run", "sigusr1-run-async", "sigterm-directory"])
def test_a_preemption_signal_saves_then_exits(tmp_path, signum, with_run, async_save) -> None:
    zygote = shared_torch_zygote()
    root = tmp_path / "runpoint"
    log = tmp_path / "log.txt"
    code = TRAINER.format(with_run=with_run, async_save=async_save)
    pid = zygote.spawn(code, log, env={"RUNPOINT_ROOT": str(root)}, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while _last_step(log) < 60:
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no output"
        time.sleep(0.01)
    os.kill(pid, signum)
    assert zygote.wait(pid) == 128 + signum, log.read_text()
    last = _last_step(log)

    directory = root / "p" / "r1" / "checkpoints" if with_run else tmp_path / "ckpts"
    state = {"w": torch.empty(10_000), "step": None}
    manager = rp.CheckpointManager(directory)
    assert manager.restore(state) is not None
    saved = manager.restored_step
    assert saved is not None and last <= saved <= last + 1  # the last completed step, not a multiple of 50
    assert state["step"] == saved and bool((state["w"] == saved).all())
    assert f"signal {signum}: saved checkpoint" in log.read_text()
    if with_run:
        store = SQLiteStore(root / "runpoint.db")
        try:
            record = store.get_run("r1")
        finally:
            store.close()
        assert record.status is rp.RunStatus.KILLED and record.error == f"signal {signum}"


def test_a_signal_without_a_registered_getter_changes_nothing(tmp_path, root) -> None:
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run)
        ckpt._preemption(signal.SIGTERM)  # no save_on_preemption: nothing to do
        assert ckpt.list() == []
        with pytest.raises(rp.InvalidArgumentError):
            ckpt.save_on_preemption("not callable")  # type: ignore[arg-type]
