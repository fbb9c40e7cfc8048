"""`runpoint show`: what it claims about a run's git state, and what it puts first."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import runpoint as rp

from .conftest import cli


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("print(1)\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "first")
    monkeypatch.chdir(repo)
    return repo


def _git_line(root: Path, run_id: str) -> str:
    shown = cli(root, "show", run_id)
    assert shown.returncode == 0, shown.stderr
    return next(line for line in shown.stdout.splitlines() if " git " in f" {line} ")


def test_untracked_files_alone_are_not_called_uncommitted_changes(repo: Path, root: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    with rp.init(project="p", id="untracked1", root=root, console=False):
        pass
    assert not (root / "p" / "untracked1" / "git.diff").exists()
    line = _git_line(root, "untracked1")
    assert "1 untracked file" in line and "git.diff" not in line and "uncommitted" not in line


def test_a_modified_file_points_at_git_diff(repo: Path, root: Path) -> None:
    (repo / "train.py").write_text("print(2)\n")
    with rp.init(project="p", id="modified1", root=root, console=False):
        pass
    assert "print(2)" in (root / "p" / "modified1" / "git.diff").read_text()
    line = _git_line(root, "modified1")
    assert "uncommitted changes (git.diff)" in line and "untracked" not in line


def test_a_clean_tree_claims_nothing(repo: Path, root: Path) -> None:
    with rp.init(project="p", id="clean1", root=root, console=False):
        pass
    line = _git_line(root, "clean1")
    assert "uncommitted" not in line and "untracked" not in line and "+" not in line
