"""Any script gets `--profile prod training.learning_rate=1e-3` from rp.config.from_argv."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runpoint.config import ArgvConfig, parse_argv
from runpoint.errors import InvalidArgumentError

from .conftest import child_env

SCRIPT = """
    import json, sys
    import runpoint as rp

    cfg = rp.config.from_argv("configs/base.yaml")
    print(json.dumps({"lr": cfg.training.learning_rate, "epochs": cfg.training.epochs,
                      "hidden": cfg.model.hidden_sizes, "argv": sys.argv[1:]}))
"""


@pytest.fixture
def script(tmp_path: Path) -> Path:
    (tmp_path / "configs" / "profiles").mkdir(parents=True)
    (tmp_path / "configs" / "base.yaml").write_text("training:\n  learning_rate: 3e-3\n  epochs: 5\n")
    (tmp_path / "configs" / "profiles" / "prod.yaml").write_text("training:\n  epochs: 50\n")
    (tmp_path / "configs" / "other.yaml").write_text("training:\n  epochs: 7\n")
    path = tmp_path / "train.py"
    path.write_text(textwrap.dedent(SCRIPT))
    return path


def run(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], cwd=script.parent, capture_output=True, text=True,
                          env=child_env(script.parent / "runs", **env), timeout=120)


def test_parse_argv_splits_config_arguments_from_the_rest() -> None:
    assert parse_argv(["--profile", "prod", "training.seed=1", "--epochs", "3", "-c=x.yaml", "--model.name=m",
                       "lr=0.1", "--lr=2", "--", "a.b=c"]) == ArgvConfig(
        path="x.yaml", profile="prod", overrides=("training.seed=1", "model.name=m", "lr=0.1"),
        rest=("--epochs", "3", "--lr=2", "a.b=c"),
    )
    assert parse_argv(["--config", "a.yaml", "--print-config", "-h"]) == ArgvConfig(path="a.yaml", help=True, print_config=True)
    with pytest.raises(InvalidArgumentError, match="--profile: expects a value"):
        parse_argv(["--profile"])
    with pytest.raises(InvalidArgumentError, match="--config: expects a value"):
        parse_argv(["--config", "--profile", "x"])
    for empty in (["--config="], ["--profile="], ["-c", " "]):  # would load the current directory / no profile
        with pytest.raises(InvalidArgumentError, match="expects a value, got an empty one"):
            parse_argv(empty)


def test_profile_and_overrides_from_the_command_line(script: Path) -> None:
    result = run(script, "--profile", "prod", "training.learning_rate=1e-3", "model.hidden_sizes=[256,128]")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "lr": 0.001, "epochs": 50, "hidden": [256, 128],
        "argv": ["--profile", "prod", "training.learning_rate=1e-3", "model.hidden_sizes=[256,128]"],
    }


def test_config_flag_replaces_the_default_file_and_env_still_applies(script: Path) -> None:
    result = run(script, "--config", "configs/other.yaml", RUNPOINT__TRAINING__LEARNING_RATE="0.5")
    assert json.loads(result.stdout)["epochs"] == 7 and json.loads(result.stdout)["lr"] == 0.5
    assert json.loads(run(script, RUNPOINT_PROFILE="prod").stdout)["epochs"] == 50


def test_help_lists_every_field_and_exits_0(script: Path) -> None:
    result = run(script, "--help")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "usage: train.py [--config FILE] [--profile NAME] [--print-config] [section.field=value ...]"
    assert "config file: configs/base.yaml (profiles: prod)" in lines
    assert any(line.split() == ["training.learning_rate", "float", "(>", "0)", "=", "0.001"] for line in lines)
    assert any("Peak learning rate." in line for line in lines)
    assert any(line.split()[:2] == ["deployment.api_key", "secret"] for line in lines)


def test_print_config_prints_the_resolved_config_and_exits(script: Path) -> None:
    result = run(script, "--print-config", "training.epochs=2", RUNPOINT__DEPLOYMENT__API_KEY="sk-123")
    assert result.returncode == 0
    assert "  epochs: 2\n" in result.stdout and "sk-123" not in result.stdout and "api_key: '********'" in result.stdout


def test_bad_command_lines_and_bad_configs_exit_2_with_the_problems(script: Path) -> None:
    unknown = run(script, "--epochs", "3")
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.strip() == (
        "train.py: error: unrecognized arguments: --epochs 3 (the config takes --config FILE, --profile NAME, "
        "--print-config and section.field=value)"
    )
    bad = run(script, "training.learning_rate=-1", "training.epoch=3")
    assert bad.returncode == 2
    assert bad.stderr.splitlines() == [
        "train.py: error: 2 problems in config configs/base.yaml:",
        "  - training.epoch: unknown key; did you mean 'training.epochs'?  [override training.epoch=3]",
        "  - training.learning_rate: got -1, expected a value greater than 0  [override training.learning_rate=-1]",
    ]
    missing = run(script, "--profile", "staging")
    assert missing.returncode == 2 and "no profile 'staging'" in missing.stderr


def test_scripts_with_their_own_argparse_pass_the_leftovers(tmp_path: Path, script: Path) -> None:
    own = tmp_path / "own.py"
    own.write_text(textwrap.dedent("""
        import argparse
        import runpoint as rp

        parser = argparse.ArgumentParser()
        parser.add_argument("--epochs-override", type=int)
        args, rest = parser.parse_known_args()
        cfg = rp.config.from_argv("configs/base.yaml", argv=rest)
        print(args.epochs_override, cfg.training.learning_rate)
    """))
    result = run(own, "--epochs-override", "4", "training.learning_rate=0.25")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "0.25"]


def test_exit_on_error_false_raises_instead() -> None:
    import runpoint as rp

    with pytest.raises(rp.ConfigError, match="training.epochs: got 0"):
        rp.config.from_argv(argv=["training.epochs=0"], exit_on_error=False, env={})
    with pytest.raises(InvalidArgumentError, match="unrecognized arguments: --x"):
        rp.config.from_argv(argv=["--x"], exit_on_error=False, env={})
    assert rp.config.from_argv(argv=["--x"], allow_unknown=True, env={}).training.epochs == 10
