"""`runpoint config init|validate|show|diff|schema` and `runpoint ls --group-by config`, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import runpoint as rp
from runpoint.config import config_hash

from .conftest import cli


def run_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RUNPOINT")}
    full_env.update(COLUMNS="200", **env)
    return subprocess.run([sys.executable, "-m", "runpoint", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A folder with configs/base.yaml and a dev profile."""
    (tmp_path / "configs" / "profiles").mkdir(parents=True)
    (tmp_path / "configs" / "base.yaml").write_text(textwrap.dedent("""\
        model:
          hidden_sizes: [64, 32]
        training:
          learning_rate: 3e-3
          batch_size: 64
        data:
          eval_batch_size: ${training.batch_size}
        experiment:
          project: cli
        """))
    (tmp_path / "configs" / "profiles" / "dev.yaml").write_text("training:\n  epochs: 1\n")
    return tmp_path


def test_init_writes_a_documented_base_and_three_profiles_that_load(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "config", "init")
    assert result.returncode == 0, result.stderr
    assert "wrote configs/base.yaml and profiles dev, prod, test" in result.stdout
    base = (tmp_path / "configs" / "base.yaml").read_text()
    assert "# Peak learning rate. (> 0)\n  learning_rate: 0.001\n" in base
    assert "# Dropout probability after each hidden layer. (>= 0.0, < 1.0)\n  dropout_rate: 0.0\n" in base
    assert "  # log_histograms: false\n" in base  # left to the preset
    for section in ("model:", "training:", "data:", "experiment:", "optimization:", "deployment:"):
        assert f"\n{section}\n" in base
    assert rp.load_config(tmp_path / "configs" / "base.yaml", env={}) == rp.ProjectConfig()
    prod = rp.load_config(tmp_path / "configs" / "base.yaml", profile="prod", env={})
    assert prod.experiment.preset == "full" and prod.experiment.log_histograms is True  # the preset takes effect
    assert prod.training.checkpoint.manager_kwargs()["keep_best"] == 1
    assert rp.load_config(tmp_path / "configs", profile="test", env={}).optimization.deterministic is True
    assert rp.load_config(tmp_path / "configs", profile="dev", env={}).training.max_steps == 50


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "base.yaml").write_text("mine: true\n")
    result = run_cli(tmp_path, "config", "init", "here")
    assert result.returncode == 1
    assert result.stderr.strip() == "runpoint: here/base.yaml exists; pass --force to overwrite, or pick another directory"
    assert (tmp_path / "here" / "base.yaml").read_text() == "mine: true\n"
    assert run_cli(tmp_path, "config", "init", "here", "--force").returncode == 0
    assert "mine: true" not in (tmp_path / "here" / "base.yaml").read_text()


def test_validate_a_good_config(project: Path) -> None:
    result = run_cli(project, "config", "validate", "configs/base.yaml", "--profile", "dev", "training.seed=3")
    assert result.returncode == 0, result.stderr
    expected_hash = config_hash(rp.load_config(project / "configs" / "base.yaml", "dev", ["training.seed=3"], env={}))
    assert result.stdout.strip() == (
        f"valid: configs/base.yaml + configs/profiles/dev.yaml (131 values, 124 from schema defaults), "
        f"config hash {expected_hash[:12]}"
    )
    as_json = json.loads(run_cli(project, "config", "validate", "configs/base.yaml", "-p", "dev", "training.seed=3", "--json").stdout)
    assert as_json["valid"] is True and as_json["config_hash"] == expected_hash and as_json["profile"] == "dev"


def test_validate_lists_every_problem_and_exits_1(project: Path) -> None:
    (project / "configs" / "bad.yaml").write_text("model:\n  dropout_rate: 3\ntrainig: {}\n")
    result = run_cli(project, "config", "validate", "configs/bad.yaml", "training.epochs=0",
                     RUNPOINT__DEPLOYMENT__PORT="http")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "runpoint: 4 problems in config configs/bad.yaml:",
        "  - model.dropout_rate: got 3, expected a value less than 1  [configs/bad.yaml:2]",
        "  - trainig: unknown key; did you mean 'training'?  [configs/bad.yaml:3]",
        "  - training.epochs: got 0, expected a value greater than 0  [override training.epochs=0]",
        "  - deployment.port: got 'http', expected a valid integer, unable to parse string as an integer  "
        "[env RUNPOINT__DEPLOYMENT__PORT]",
    ]
    as_json = run_cli(project, "config", "validate", "configs/bad.yaml", "--json")
    assert as_json.returncode == 1
    problems = json.loads(as_json.stdout)["problems"]
    assert problems[0] == {"path": "model.dropout_rate", "message": "expected a value less than 1",
                           "source": "configs/bad.yaml:2", "value": "3"}


def test_validate_malformed_yaml_and_missing_files(project: Path) -> None:
    (project / "configs" / "broken.yaml").write_text("model:\n  name: [x\n")
    result = run_cli(project, "config", "validate", "configs/broken.yaml")
    assert result.returncode == 1
    assert result.stderr.startswith("runpoint: invalid config configs/broken.yaml: malformed YAML at column 1")
    assert result.stderr.rstrip().endswith("[configs/broken.yaml:3]")
    missing = run_cli(project, "config", "validate", "configs/nope.yaml")
    assert missing.returncode == 1 and "file not found  [configs/nope.yaml]" in missing.stderr
    profile = run_cli(project, "config", "validate", "configs/base.yaml", "--profile", "deb")
    assert profile.returncode == 1 and "no profile 'deb': did you mean 'dev'?" in profile.stderr


def test_show_prints_the_resolved_config_with_secrets_masked(project: Path) -> None:
    result = run_cli(project, "config", "show", "configs/base.yaml", "-p", "dev",
                     RUNPOINT__DEPLOYMENT__API_KEY="sk-live-777")
    assert result.returncode == 0, result.stderr
    shown = yaml.safe_load(result.stdout)
    assert shown["training"]["epochs"] == 1 and shown["data"]["eval_batch_size"] == 64
    assert shown["deployment"]["api_key"] == "********" and "sk-live-777" not in result.stdout
    as_json = run_cli(project, "config", "show", "configs/base.yaml", "--format", "json")
    assert json.loads(as_json.stdout)["model"]["hidden_sizes"] == [64, 32]


def test_show_sources_says_where_each_value_came_from(project: Path) -> None:
    result = run_cli(project, "config", "show", "configs/base.yaml", "--profile", "dev", "--sources",
                     "model.dropout_rate=0.25", RUNPOINT__TRAINING__SEED="9")
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:]}
    assert rows["training.learning_rate"] == ["0.003", "configs/base.yaml:4"]
    assert rows["training.epochs"] == ["1", "configs/profiles/dev.yaml:2"]
    assert rows["training.seed"] == ["9", "env RUNPOINT__TRAINING__SEED"]
    assert rows["model.dropout_rate"] == ["0.25", "override model.dropout_rate=0.25"]
    assert rows["data.eval_batch_size"] == ["64", "configs/base.yaml:7 (${training.batch_size})"]
    assert rows["training.optimizer"] == ["adamw", "default"]
    data = json.loads(run_cli(project, "config", "show", "configs/base.yaml", "--sources", "--json").stdout)
    assert data["sources"]["training.learning_rate"] == "configs/base.yaml:4"
    assert data["config_hash"] == config_hash(rp.load_config(project / "configs" / "base.yaml", env={}))


def test_show_without_a_file_shows_defaults_and_overrides(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "config", "show", "training.epochs=2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"]["training"]["epochs"] == 2 and data["files"] == []


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_diff_between_two_files(project: Path) -> None:
    other = project / "configs" / "other.yaml"
    other.write_text("model: {hidden_sizes: [64, 32]}\ntraining: {learning_rate: 1e-4, batch_size: 64}\n"
                     "experiment: {project: cli, tags: [x]}\n")
    result = run_cli(project, "config", "diff", "configs/base.yaml", "configs/other.yaml", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["changed"] == {
        "training.learning_rate": {"a": 0.003, "b": 0.0001},
        "data.eval_batch_size": {"a": 64, "b": None},
        "experiment.tags": {"a": [], "b": ["x"]},
    }
    assert data["only_a"] == {} and data["only_b"] == {} and data["identical"] is False
    table = run_cli(project, "config", "diff", "configs/base.yaml", "configs/other.yaml")
    assert "training.learning_rate" in table.stdout and "0.003" in table.stdout and "0.0001" in table.stdout
    assert "(3 changed, 0 only in A, 0 only in B" in table.stderr
    same = run_cli(project, "config", "diff", "configs/base.yaml", "configs/base.yaml", "--exit-code")
    assert same.returncode == 0 and same.stdout.startswith("identical: configs/base.yaml and configs/base.yaml")
    assert run_cli(project, "config", "diff", "configs/base.yaml", "configs/other.yaml", "--exit-code").returncode == 1


def test_diff_a_file_against_a_recorded_run(project: Path) -> None:
    root = project / "runs"
    cfg = rp.load_config(project / "configs" / "base.yaml", env={})
    with rp.init(config=cfg, root=root, name="recorded", console=False) as run:
        pass
    result = run_cli(project, "config", "diff", "configs/base.yaml", run.id, "--root", str(root), "--json",
                     "training.learning_rate=0.1")  # not an override here: diff takes none
    assert result.returncode == 2  # a usage error: diff takes exactly two configs
    result = run_cli(project, "config", "diff", "configs/base.yaml", "recorded", "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["identical"] is True and data["b"] == f"run {run.id} (recorded)"
    result = run_cli(project, "config", "diff", "configs/base.yaml", "latest", "--profile", "dev", "--root", str(root), "--json")
    assert json.loads(result.stdout)["changed"] == {"training.epochs": {"a": 1, "b": 10}}


def test_diff_with_bad_references(project: Path) -> None:
    root = project / "runs"
    with rp.init("p", config={"a": 1}, root=root, console=False):
        pass
    result = run_cli(project, "config", "diff", "configs/base.yaml", "no-such-run", "--root", str(root))
    assert result.returncode == 1
    assert result.stderr.strip() == "runpoint: 'no-such-run' is neither a config file nor a run (`runpoint ls` lists runs)"
    result = run_cli(project, "config", "diff", "configs/base.yaml", "configs/missing.yaml")
    assert result.returncode == 1 and "file not found  [configs/missing.yaml]" in result.stderr


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_a_custom_schema_by_module_and_class(project: Path) -> None:
    (project / "myschema.py").write_text(textwrap.dedent("""\
        import pydantic

        class Train(pydantic.BaseModel):
            lr: float = pydantic.Field(0.1, gt=0, description="Learning rate.")

        class MyConfig(pydantic.BaseModel):
            train: Train = Train()
            name: str = pydantic.Field("x", description="A name.")
        """))
    (project / "mine.yaml").write_text("train: {lr: 0.5}\n")
    result = run_cli(project, "config", "show", "mine.yaml", "--schema", "myschema:MyConfig", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["config"] == {"train": {"lr": 0.5}, "name": "x"}
    bad = run_cli(project, "config", "validate", "mine.yaml", "--schema", "myschema:MyConfig", "train.lr=-1")
    assert bad.returncode == 1 and "train.lr: got -1, expected a value greater than 0" in bad.stderr
    init = run_cli(project, "config", "init", "mine", "--schema", "myschema:MyConfig")
    assert init.returncode == 0, init.stderr
    assert "# Learning rate. (> 0)\n  lr: 0.1\n" in (project / "mine" / "base.yaml").read_text()
    for spec, message in [("nomodule:X", "cannot import it"), ("myschema:Nope", "cannot import it"),
                          ("json:dumps", "is not a pydantic model class"), ("justaname", "give module:Class")]:
        result = run_cli(project, "config", "validate", "mine.yaml", "--schema", spec)
        assert result.returncode == 2 and message in result.stderr, (spec, result.stderr)


def test_schema_prints_a_json_schema_with_descriptions(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "config", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema == rp.ProjectConfig.model_json_schema()


def test_bad_options_are_usage_errors(project: Path) -> None:
    result = run_cli(project, "config", "show", "configs/base.yaml", "--format", "toml")
    assert result.returncode == 2 and result.stderr.strip() == "runpoint: --format 'toml': use yaml or json"
    assert run_cli(project, "config", "nope").returncode == 2
    helped = run_cli(project, "config", "--help")
    assert helped.returncode == 0
    for command in ("init", "validate", "show", "diff", "schema"):
        assert command in helped.stdout


def test_ls_groups_and_filters_runs_by_config_hash(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    a = rp.ProjectConfig(experiment={"project": "g"}, training={"learning_rate": 0.1})
    b = rp.ProjectConfig(experiment={"project": "g"}, training={"learning_rate": 0.2})
    ids = {}
    for name, cfg in [("a1", a), ("b1", b), ("a2", a)]:
        with rp.init(config=cfg, name=name, root=root, console=False) as run:
            ids[name] = run.id
    grouped = json.loads(cli(root, "ls", "--group-by", "config", "--json").stdout)
    assert [(g["key"], g["count"], [r["name"] for r in g["runs"]]) for g in grouped] == [
        (config_hash(a), 2, ["a2", "a1"]),
        (config_hash(b), 1, ["b1"]),
    ]
    table = cli(root, "ls", "--group-by", "config")
    assert table.returncode == 0 and f"config {config_hash(a)[:12]}" in table.stdout
    assert table.stdout.index(f"config {config_hash(a)[:12]}") < table.stdout.index(ids["a1"]) < table.stdout.index(
        f"config {config_hash(b)[:12]}") < table.stdout.index(ids["b1"])
    filtered = json.loads(cli(root, "ls", "--config-hash", config_hash(b)[:8], "--json").stdout)
    assert [r["name"] for r in filtered] == ["b1"]
    bad = cli(root, "ls", "--group-by", "colour")
    assert bad.returncode == 2 and "--group-by 'colour': use one of config, group, project, status" in bad.stderr
