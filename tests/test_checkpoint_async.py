"""Async saves: save() returns after the host copy, the training loop may change its tensors at
once, only committed checkpoints are visible, and a failure surfaces on the next call."""

from __future__ import annotations

import errno
import os
import threading

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import SafetensorsIO

from .conftest import run_script


class GatedIO(SafetensorsIO):
    """The real IO, held at the start of each save until the test opens the gate, or failing."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.started = threading.Event()
        self.fail_with: OSError | None = None

    def save(self, storage, directory, payload):
        self.started.set()
        assert self.gate.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        return super().save(storage, directory, payload)


def test_save_returns_before_the_commit_and_the_snapshot_is_taken_at_the_call(tmp_path) -> None:
    io = GatedIO()
    ckpt = rp.CheckpointManager(tmp_path, async_save=True, io=io, rng=False)
    io.gate.set()
    w = torch.zeros(1000)
    ckpt.save(0, {"w": w})
    ckpt.wait()
    io.gate.clear()
    w.fill_(1.0)
    assert ckpt.save(1, {"w": w}) is None
    w.fill_(99.0)  # the training loop goes on while the save is held
    assert io.started.wait(10)
    assert ckpt.latest.step == 0 and [c.step for c in ckpt.list()] == [0]
    assert sorted(n for n in os.listdir(tmp_path) if not n.startswith(".tmp-")) == ["latest", "step-000000"]
    state = {"w": torch.empty(1000)}
    assert ckpt.restore(state) == 1 and bool((state["w"] == 0).all())  # only committed checkpoints
    io.gate.set()
    info = ckpt.wait()
    assert info.step == 1 and ckpt.latest.step == 1
    assert ckpt.restore(state) == 2 and bool((state["w"] == 1.0).all())  # not 99: copied at save()


def test_host_buffers_are_reused_between_saves(tmp_path) -> None:
    ckpt = rp.CheckpointManager(tmp_path, async_save=True, rng=False)
    w = torch.randn(256)
    ckpt.save(0, {"w": w})
    ckpt.wait()
    first = ckpt._saver.buffers._buffers["w"].data_ptr()
    ckpt.save(1, {"w": w})
    ckpt.wait()
    assert ckpt._saver.buffers._buffers["w"].data_ptr() == first


def test_a_background_failure_surfaces_on_wait_then_on_the_next_save(tmp_path) -> None:
    io = GatedIO()
    io.fail_with = OSError(errno.ENOSPC, "No space left on device")
    io.gate.set()
    ckpt = rp.CheckpointManager(tmp_path, async_save=True, io=io, rng=False)
    ckpt.save(1, {"x": 1})
    with pytest.raises(rp.CheckpointError, match="the disk is full"):
        ckpt.wait()
    ckpt.wait()  # raised once
    ckpt.save(2, {"x": 2})
    with pytest.raises(rp.CheckpointError, match="step 2"):
        ckpt.save(3, {"x": 3})
    assert ckpt.list() == [] and [n for n in os.listdir(tmp_path) if n.startswith(".")] == []
    io.fail_with = None
    ckpt.save(4, {"x": 4})
    assert ckpt.wait().step == 4


def test_a_failed_last_save_marks_the_run_failed(root, store_at) -> None:
    io = GatedIO()
    io.fail_with = OSError(errno.EACCES, "Permission denied")
    io.gate.set()
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        rp.CheckpointManager(run, async_save=True, io=io).save(1, {"x": 1})
    record = store_at().get_run("r1")
    assert record.status is rp.RunStatus.FAILED and "permission denied" in record.error


def test_the_run_waits_for_the_last_async_save_when_it_finishes(root, store_at) -> None:
    io = GatedIO()
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, async_save=True, io=io)
        ckpt.save(7, {"x": 1})
        threading.Timer(0.3, io.gate.set).start()
    assert store_at().get_run("r1").status is rp.RunStatus.COMPLETED
    assert rp.load_checkpoint(root / "p" / "r1" / "checkpoints") == {"x": 1}


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_an_async_save_without_a_run_is_committed_before_the_script_exits(tmp_path, root) -> None:
    # the interpreter exits right after save(): the background write must not be abandoned
    result = run_script(tmp_path, root, f"""
        import torch, runpoint as rp
        ckpt = rp.CheckpointManager({str(tmp_path / "ckpt")!r}, async_save=True)
        ckpt.save(1, {{"w": torch.arange(4_000_000, dtype=torch.float32)}})
    """)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in (tmp_path / "ckpt").iterdir() if p.name.startswith("step-")] == ["step-000001"]
    loaded = rp.load_checkpoint(tmp_path / "ckpt")
    assert torch.equal(loaded["w"], torch.arange(4_000_000, dtype=torch.float32))
    assert not [p for p in (tmp_path / "ckpt").iterdir() if p.name.startswith(".tmp")]
