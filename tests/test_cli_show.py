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


def test_a_typed_config_shows_what_differs_from_the_defaults_first(root: Path) -> None:
    from runpoint.config.schema import ProjectConfig

    config = ProjectConfig.model_validate({"training": {"learning_rate": 0.01, "batch_size": 128}})
    with rp.init(project="p", id="typed1", root=root, console=False, config=config) as run:
        run.summary["best/acc"] = 0.5
    shown = cli(root, "show", "typed1")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "training.learning_rate" in shown.stdout and "training.batch_size" in shown.stdout
    assert "training.optimizer" not in shown.stdout and "model.activation" not in shown.stdout
    assert len(lines) < 30, shown.stdout
    assert "config values at the schema's defaults not shown; --all shows them" in shown.stderr
    everything = cli(root, "show", "typed1", "--all").stdout
    assert "training.optimizer" in everything and "model.activation" in everything
    # the values set come before the summary; the defaults after it
    assert everything.index("training.learning_rate") < everything.index("best/acc") < everything.index("training.optimizer")


def test_a_plain_dict_config_is_shown_whole(root: Path) -> None:
    with rp.init(project="p", id="plain1", root=root, console=False, config={"lr": 0.1, "opt": "adam"}):
        pass
    shown = cli(root, "show", "plain1")
    assert "lr" in shown.stdout and "adam" in shown.stdout and "not shown" not in shown.stderr
