"""A full disk: readers keep working, writers say which path and what to do.

The root lives on a small file system of its own (tmpfs, root only), filled to the last
byte after a run was recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import runpoint as rp
from runpoint.errors import StoreError

from ..conftest import child_env, run_script


def _fill(directory) -> None:
    """Write zeros until the file system holding ``directory`` has no byte left."""
    with open(os.path.join(directory, "filler"), "wb", buffering=0) as handle:
        for size in (65536, 4096, 512, 1):  # down to the last partial block
            try:
                while handle.write(b"\0" * size):
                    pass
            except OSError:
                pass


@pytest.fixture
def full_root(small_disk):
    """A root holding one finished run with 500 points and a checkpoint, on a full disk.

    Recorded by another process that has exited, as a user's training script would have:
    its last connection closed, SQLite removed the WAL and its index.
    """
    root = small_disk / "runpoint"
    recorded = run_script(small_disk, root, """
        import torch, runpoint as rp
        with rp.init(project="p", console=False) as run:
            for step in range(500):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
            rp.CheckpointManager(run, rng=False).save(7, {"w": torch.arange(10.0)})
        print(run.id)
    """)
    assert recorded.returncode == 0, recorded.stderr
    (small_disk / "script.py").unlink()
    _fill(small_disk)
    return root, recorded.stdout.strip()


def _cli(root, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runpoint", *args, "--root", str(root)], capture_output=True,
                          text=True, timeout=60, env=child_env(root))


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_read_commands_work_on_a_full_disk(full_root) -> None:
    root, run_id = full_root
    for _ in range(3):  # the failures were intermittent: every attempt must work
        listed = _cli(root, "ls", "--json")
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
        assert "disk is full" in listed.stderr
        metrics = _cli(root, "metrics", run_id, "loss", "--json")
        assert metrics.returncode == 0, metrics.stderr
        assert len(json.loads(metrics.stdout)["steps"]) == 500
        verified = _cli(root, "ckpt", "verify", run_id)
        assert verified.returncode == 0, verified.stderr
        assert "step-000007" in verified.stdout and "1 checkpoint(s) verified" in verified.stderr


def test_writing_on_a_full_disk_names_the_path_and_the_fix(full_root) -> None:
    root, run_id = full_root
    with pytest.raises(StoreError) as caught:
        rp.init(project="p", root=root, console=False)
    message = str(caught.value)
    assert str(root) in message and "free some space" in message
    assert os.listdir(root / "p") == [run_id]  # nothing half-made left behind


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_a_run_that_fills_the_disk_is_not_completed_and_keeps_its_points(small_disk, tmp_path) -> None:
    """The disk fills while a run logs: finish says failed, how many points and where they went;
    `runpoint recover` stores them once there is room, each exactly once."""
    root = small_disk / "runpoint"
    child = run_script(tmp_path, root, f"""
        import os, runpoint as rp
        run = rp.init(project="p", console=False, system_metrics=False)
        run._writer.give_up_after_s = 2.0  # the default 30 s, shortened for the test
        for step in range(2000):
            run.log({{"loss": float(step)}}, step=step)
        run.flush()
        with open({str(small_disk / "filler")!r}, "wb", buffering=0) as handle:  # the disk fills up
            try:
                while handle.write(b"\\0" * 4096):
                    pass
            except OSError:
                pass
        for step in range(2000, 50_000):  # under the writer's 100 000-call queue: log does not wait
            run.log({{"loss": float(step)}}, step=step)
        try:
            run.finish()
        except rp.RunpointError as exc:
            print("finish:", exc)
        print("status", run.status.value)
        print("id", run.id)
    """, timeout=240)
    out = child.stdout
    assert "status failed" in out, child.stdout + child.stderr
    run_id = out.split("id ", 1)[1].split()[0]
    assert "could not be stored; they were saved to" in child.stderr
    (small_disk / "filler").unlink()  # room again
    recovered = _cli(root, "recover", run_id)
    assert recovered.returncode == 0, recovered.stderr
    again = _cli(root, "recover", run_id)  # nothing left: said so, nothing stored twice
    assert again.returncode == 1 and "no unstored points" in again.stderr
    metrics = _cli(root, "metrics", run_id, "loss", "--json")
    steps = json.loads(metrics.stdout)["steps"]
    assert steps == list(range(50_000))
