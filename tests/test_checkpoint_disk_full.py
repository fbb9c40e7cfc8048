"""A full disk or a read-only file system: CheckpointError, every earlier checkpoint intact,
no partial directory, and the manager keeps working once there is room again.

Needs a small file system of its own: a 4 MiB tmpfs (or, failing that, a loop device),
which takes root (or CAP_SYS_ADMIN). Without it the tests skip and say why.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint


def _state(mib: float) -> dict:
    return {"w": torch.ones(int(mib * 2**20) // 4), "note": "x"}


def _entries(directory) -> list[str]:
    return sorted(os.listdir(directory))


def test_disk_full_raises_and_keeps_what_was_saved(small_disk) -> None:
    directory = small_disk / "ckpts"
    ckpt = rp.CheckpointManager(directory, keep_last=5, rng=False)
    ckpt.save(1, _state(1))
    before = _entries(directory)
    with pytest.raises(rp.CheckpointError) as caught:
        ckpt.save(2, _state(8))
    assert "the disk is full" in str(caught.value) and "untouched" in str(caught.value)
    assert _entries(directory) == before  # no partial or staging directory
    assert [c.step for c in ckpt.list()] == [1] and ckpt.latest.step == 1
    assert all(r.ok for r in verify_checkpoint(directory))
    state = _state(1)
    state["w"].zero_()
    assert ckpt.restore(state) == 2 and bool((state["w"] == 1).all())
    ckpt.save(3, _state(1))  # room for a small one: the manager still works
    assert [c.step for c in ckpt.list()] == [1, 3]


def test_an_async_save_that_fills_the_disk_fails_on_wait_and_on_the_next_save(small_disk) -> None:
    directory = small_disk / "ckpts"
    ckpt = rp.CheckpointManager(directory, async_save=True, rng=False)
    ckpt.save(1, _state(1))
    assert ckpt.wait().step == 1
    ckpt.save(2, _state(8))
    with pytest.raises(rp.CheckpointError, match="disk is full"):
        ckpt.wait()
    ckpt.save(3, _state(8))
    with pytest.raises(rp.CheckpointError, match="disk is full"):
        ckpt.save(4, _state(0.5))  # the failure of step 3 surfaces here, and step 4 is not started
    assert [c.step for c in ckpt.list()] == [1]
    assert _entries(directory) == ["latest", "step-000001"]


def test_a_failed_final_async_save_fails_the_run(small_disk, root, store_at) -> None:
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, directory=small_disk / "ckpts", async_save=True, rng=False)
        ckpt.save(1, _state(8))
    record = store_at().get_run("r1")
    assert record.status is rp.RunStatus.FAILED and "disk is full" in (record.error or "")


def test_a_read_only_file_system_raises_and_keeps_what_was_saved(small_disk) -> None:
    directory = small_disk / "ckpts"
    ckpt = rp.CheckpointManager(directory, rng=False)
    ckpt.save(1, _state(0.5))
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        with pytest.raises(rp.CheckpointError, match="read-only"):
            ckpt.save(2, _state(0.5))
        assert [c.step for c in rp.CheckpointManager(directory).list()] == [1]  # opening it writes nothing
        assert _entries(directory) == ["latest", "step-000001"]
        assert rp.load_checkpoint(directory)["note"] == "x"
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_directory_without_write_permission_raises(tmp_path) -> None:
    directory = tmp_path / "ckpts"
    ckpt = rp.CheckpointManager(directory, rng=False)
    ckpt.save(1, {"x": 1})
    directory.chmod(0o500)
    try:
        with pytest.raises(rp.CheckpointError, match="permission denied"):
            ckpt.save(2, {"x": 2})
    finally:
        directory.chmod(0o700)
    assert [c.step for c in ckpt.list()] == [1]
