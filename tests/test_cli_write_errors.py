"""A path the CLI cannot write is one line on stderr naming it and the fix, never a traceback.

Tests run as root, so chmod does not make a directory unwritable; the unwritable paths
here are under a regular file (ENOTDIR), under a directory that does not exist (ENOENT)
and in /sys, which refuses new files even to root.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import runpoint as rp
from runpoint.cli._oserror import describe

from .conftest import child_env, cli


@pytest.fixture
def a_run(root: Path) -> Path:
    with rp.init(project="p", id="aaa1", name="alpha", config={"lr": 0.1}, root=root, console=False) as run:
        for step in range(3):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        rp.CheckpointManager(run, monitor="loss").save(2, {"model": torch.nn.Linear(2, 2)}, metrics={"loss": 0.3})
    return root


def _assert_one_line(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("runpoint: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("export", "aaa1", "--out", "{out}.csv"),
        ("export", "aaa1", "-f", "json", "--out", "{out}.json"),
        ("export", "aaa1", "-f", "parquet", "--out", "{out}.parquet"),
        ("export", "aaa1", "--archive", "--out", "{out}.tar.gz"),
        ("config", "init", "{out}"),
        pytest.param(("report", "aaa1", "--out", "{out}.html"), marks=pytest.mark.slow),
        pytest.param(("plot", "aaa1", "--out", "{out}.png"), marks=pytest.mark.slow),
        pytest.param(("ckpt", "export", "aaa1", "{out}.safetensors"), marks=pytest.mark.slow),
    ],
)
def test_writing_under_a_file_names_the_path_and_the_file_in_the_way(a_run: Path, tmp_path: Path, args) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    out = blocker / "out"
    argv = [arg.format(out=out) for arg in args]
    result = cli(None if args[0] == "config" else a_run, *argv)
    _assert_one_line(result, str(out), f"{blocker} is a file, not a directory")
    assert blocker.read_text() == "x"


def test_a_missing_directory_is_named_with_the_fix(a_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "nope" / "deeper" / "run.tar.gz"
    result = cli(a_run, "export", "aaa1", "--archive", "--out", str(out))
    _assert_one_line(result, str(out), f"directory {tmp_path / 'nope'} does not exist", "create it first")
    assert not (tmp_path / "nope").exists()


@pytest.mark.slow
def test_ckpt_export_into_a_missing_directory(a_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "nonexistent_dir" / "m.safetensors"
    result = cli(a_run, "ckpt", "export", "latest", str(out))
    _assert_one_line(result, str(out), "does not exist", "create it first")


def test_a_read_only_place_says_permission_denied(a_run: Path) -> None:
    if os.access("/sys", os.W_OK) and Path("/sys").stat().st_dev == 0:  # pragma: no cover - unusual hosts
        pytest.skip("/sys is writable here")
    result = cli(a_run, "export", "aaa1", "--out", "/sys/runpoint-test.csv")
    _assert_one_line(result, "/sys/runpoint-test.csv", "permission denied", "choose another --out")


def test_a_root_that_is_a_file(tmp_path: Path) -> None:
    not_a_root = tmp_path / "a-file"
    not_a_root.write_text("x")
    env = child_env(not_a_root)
    listing = subprocess.run([sys.executable, "-m", "runpoint", "ls"], capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 1 and "is a file, not a runpoint root" in listing.stderr
    assert not_a_root.read_text() == "x"


@pytest.mark.slow  # runs the demo, ~8 s
def test_the_demo_refuses_a_root_that_is_a_file(tmp_path: Path) -> None:
    not_a_root = tmp_path / "a-file"
    not_a_root.write_text("x")
    demo = subprocess.run([sys.executable, "-m", "runpoint", "demo", "--epochs", "1"], capture_output=True, text=True,
                          env=child_env(not_a_root), timeout=120)
    _assert_one_line(demo, str(not_a_root), "it is a file, not a directory")
    assert not_a_root.read_text() == "x"


@pytest.mark.slow  # runs the demo, ~8 s; the root-is-a-file case of the store is in the default run
def test_demo_root_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli(None, "demo", "--epochs", "1", "--root", str(blocker / "root"))
    _assert_one_line(result, str(blocker / "root"), f"{blocker} is a file, not a directory")


def test_describe_explains_each_kind_of_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    denied = describe(PermissionError(errno.EACCES, "Permission denied", str(target)), target, "choose another --out")
    assert denied == f"cannot write {target}: permission denied; choose another --out you can write to"
    full = describe(OSError(errno.ENOSPC, "No space left on device", str(target)), target)
    assert full == f"cannot write {target}: no space left on the device; free some space or choose another path"
    read_only = describe(OSError(errno.EROFS, "Read-only file system", str(target)), target)
    assert "the file system is read-only" in read_only
    missing_file = describe(FileNotFoundError(errno.ENOENT, "No such file", str(target)), verb="use")
    assert missing_file == f"{target} does not exist; check the path"
