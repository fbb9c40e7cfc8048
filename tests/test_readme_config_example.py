"""The README's Configuration section runs as written, against the files in examples/configs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runpoint as rp
from runpoint import query
from runpoint.config import config_hash
from runpoint.store import RunQuery

from .conftest import REPO

SECTION = (REPO / "README.md").read_text().split("## Configuration", 1)[1].split("\n## ", 1)[0]


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, re.S)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    return tmp_path


def env_for(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOINT")}
    env.update(RUNPOINT_ROOT=str(workdir / "runpoint"), COLUMNS="200", RUNPOINT_CONSOLE="0",
               GIT_CEILING_DIRECTORIES=str(workdir.parent))
    return env


def test_every_example_profile_loads() -> None:
    base = REPO / "examples" / "configs" / "base.yaml"
    for profile in (None, "dev", "prod", "test"):
        cfg = rp.load_config(base, profile=profile, env={})
        assert cfg.experiment.project == "digits" and cfg.model.input_size == 64
    assert rp.load_config(base, profile="prod", env={}).experiment.log_histograms is True


def test_the_python_example_prints_what_the_readme_says(workdir: Path) -> None:
    (code,) = blocks("python")
    assert code == (REPO / "examples" / "load_config.py").read_text()
    result = subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env_for(workdir),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "0.01 2 [256, 128]"
    assert lines[1] == "64"
    assert lines[2] == ("{'keep_last': 3, 'keep_best': 1, 'monitor': 'val/loss', 'mode': 'min', "
                        "'keep_every_n_steps': None, 'save_every_n_steps': None, 'async_save': False}")
    store = query.open_root(workdir / "runpoint")
    try:
        (run,) = store.list_runs(RunQuery())
        assert run.project == "digits" and set(run.tags) == {"mlp", "dev"}
        assert run.config_hash.startswith(lines[3])
        cfg = rp.load_config(workdir / "examples/configs/base.yaml", "dev",
                             ["training.learning_rate=1e-2", "model.hidden_sizes=[256,128]"], env={})
        assert run.config_hash == config_hash(cfg)
    finally:
        store.close()


def test_the_console_example_is_what_validate_prints(workdir: Path) -> None:
    (console,) = blocks("console")
    command, *expected = console.strip().splitlines()
    assert command.startswith("$ runpoint ")
    result = subprocess.run([sys.executable, "-m", "runpoint", *shlex.split(command[len("$ runpoint "):])],
                            cwd=workdir, env=env_for(workdir), capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.splitlines() == expected


@pytest.mark.slow  # trains the demo from the README shell lines, ~11 s
def test_the_shell_examples_run(workdir: Path) -> None:
    (code,) = blocks("python")
    env = env_for(workdir)
    subprocess.run([sys.executable, "-c", code], cwd=workdir, env=env, check=True, capture_output=True, timeout=120)
    (shell,) = blocks("bash")
    for line in shell.strip().splitlines():
        words = shlex.split(line, comments=True)
        argv = [sys.executable, "-m", "runpoint", *words[1:]] if words[0] == "runpoint" else [sys.executable, *words[1:]]
        result = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, (line, result.stderr)
    assert (workdir / "configs" / "base.yaml").exists()  # `runpoint config init configs`
    store = query.open_root(workdir / "runpoint")
    try:
        runs = store.list_runs(RunQuery())
        trained = [run for run in runs if run.config_hash != runs[-1].config_hash]
        assert len(runs) == 2 and trained  # examples/train.py recorded a second, different run
    finally:
        store.close()
