"""`runpoint demo --resume` takes run names, and says when there is nothing left; progress on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from runpoint.store import RunQuery

from .conftest import cli

pytest.importorskip("torch")
pytest.importorskip("sklearn")


@pytest.mark.slow  # two demo processes
def test_a_finished_demo_resumed_by_name_has_nothing_left(root: Path, store_at) -> None:
    first = cli(root, "demo", "--epochs", "1", "--name", "digits-a")
    assert first.returncode == 0, first.stderr
    resumed = cli(root, "demo", "--resume", "digits-a")
    assert resumed.returncode == 0, resumed.stderr
    (run,) = store_at().list_runs(RunQuery())
    assert f"runpoint demo: run {run.id} already trained all 1 epochs" in resumed.stdout
    assert "(epoch 2" not in resumed.stdout and "epoch  2/" not in resumed.stdout
    assert run.name == "digits-a" and run.resume_count == 1 and run.status.value == "completed"


@pytest.mark.slow  # a demo process
def test_resume_of_an_unknown_name_says_so(root: Path) -> None:
    assert cli(root, "demo", "--epochs", "1", "--name", "digits-a").returncode == 0
    result = cli(root, "demo", "--resume", "digits-b")
    assert result.returncode == 1
    assert result.stderr.startswith("runpoint: no run matches 'digits-b'")


def _demo_on_a_terminal(root: Path) -> str:
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    env.pop("RUNPOINT_ROOT", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "runpoint", "demo", "--epochs", "1", "training.batch_size=4", "--root", str(root)],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env,
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.slow  # two demos of 360 steps
def test_the_demo_shows_progress_within_an_epoch_on_a_terminal_only(root: Path) -> None:
    shown = _demo_on_a_terminal(root)
    assert "epoch 1/1" in shown and "/360" in shown  # the bar: 1438 digits in batches of 4
    piped = cli(root, "demo", "--epochs", "1", "training.batch_size=4")
    assert piped.returncode == 0, piped.stderr
    assert "/360" not in piped.stdout and "\x1b[" not in piped.stdout
