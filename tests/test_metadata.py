"""meta.json and the store describe where a run came from: host, packages, git, argv, seeds."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from .conftest import run_script


def _git(cwd, *args):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_git_commit_branch_remote_and_dirty_diff_are_recorded(tmp_path, root, store_at) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    _git(repo, "remote", "add", "origin", "https://user:ghp_secret@example.com/team/model.git")
    (repo / "train.py").write_text("lr = 0.1\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-qm", "first")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "train.py").write_text("lr = 0.2\n")
    (repo / "scratch.txt").write_text("new file\n")
    result = run_script(repo, root, """
        import runpoint as rp
        with rp.init(project="p", id="r1", config={"training": {"seed": 7}, "data_seed": 3}) as run:
            pass
    """, GIT_CEILING_DIRECTORIES=str(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = root / "p" / "r1"
    meta = json.loads((run_dir / "meta.json").read_text())
    git = meta["git"]
    assert git["commit"] == commit and git["branch"] == "main" and git["dirty"] is True
    assert git["remote"] == "https://example.com/team/model.git"      # credentials stripped
    assert "scratch.txt" in git["untracked"] and "script.py" in git["untracked"]
    diff = (run_dir / "git.diff").read_text()
    assert "-lr = 0.1" in diff and "+lr = 0.2" in diff
    assert meta["host"] == socket.gethostname()
    assert meta["python"]["version"] == "%d.%d.%d" % sys.version_info[:3]
    assert meta["argv"][0].endswith("script.py") and meta["cwd"] == str(repo)
    assert meta["seeds"] == {"training.seed": 7, "data_seed": 3}
    assert meta["packages"]["pytest"] and meta["packages"]["runpoint"]
    assert meta["torch"] is not None and meta["torch"]["version"].startswith("2.")
    stored = store_at().get_meta("r1")
    assert stored["git"]["commit"] == commit and "packages" not in stored


def test_outside_a_repository_git_is_none_and_no_diff_is_written(tmp_path, root) -> None:
    result = run_script(tmp_path, root, """
        import torch, runpoint as rp
        torch.manual_seed(1234)
        with rp.init(project="p", id="r1") as run:
            pass
    """, GIT_CEILING_DIRECTORIES=str(tmp_path.parent))
    assert result.returncode == 0, result.stderr
    meta = json.loads((root / "p" / "r1" / "meta.json").read_text())
    assert meta["git"] is None and not (root / "p" / "r1" / "git.diff").exists()
    assert meta["seeds"] == {"torch.initial_seed": 1234}     # torch was imported by the script
    assert meta["torch"]["cuda"] is None or isinstance(meta["torch"]["cuda"], str)
