"""A loaded config in a run: secrets masked on disk, run fields from cfg.experiment, the hash recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import runpoint as rp
from runpoint.config import MASK, config_hash
from runpoint.store.sqlite import SQLiteStore

from .conftest import child_env, write_script

SCRIPT = """
    import sys
    import runpoint as rp
    from runpoint.config.schema import DataConfig

    class MyData(DataConfig):
        hf_token: str = ""

    class MyProject(rp.ProjectConfig):
        data: MyData = MyData()

    cfg = rp.config.from_argv("configs/base.yaml", schema=MyProject)
    assert cfg.deployment.api_key.get_secret_value() == "sk-env-4242"      # the object keeps the real value
    assert cfg.data.hf_token == "hf_argv_9999"
    with rp.init(config=cfg) as run:
        print("run", run.id, run.dir, flush=True)
        print(repr(cfg.deployment), flush=True)   # pydantic's repr masks SecretStr itself
        run.log({"loss": 1.0}, step=0)
    print("hash", rp.config.config_hash(cfg))
"""


def test_secrets_are_masked_everywhere_in_the_run_directory_and_the_store(tmp_path: Path, root: Path) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text("experiment:\n  project: secrets\n  tags: [s]\n")
    script = write_script(tmp_path, SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script), "data.hf_token=hf_argv_9999", "training.seed=5"],
        cwd=tmp_path, env=child_env(root, RUNPOINT__DEPLOYMENT__API_KEY="sk-env-4242"),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    run_line = next(line for line in result.stdout.splitlines() if line.startswith("run "))
    _, run_id, run_dir = run_line.split(" ", 2)
    run_dir = Path(run_dir)
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["deployment"]["api_key"] == MASK and written["data"]["hf_token"] == MASK
    assert written["training"]["seed"] == 5 and written["experiment"]["project"] == "secrets"
    for path in [*run_dir.rglob("*"), *root.glob("runpoint.db*")]:
        if path.is_file():
            data = path.read_bytes()
            assert b"sk-env-4242" not in data and b"hf_argv_9999" not in data, path
    meta = json.loads((run_dir / "meta.json").read_text())
    assert "data.hf_token=********" in meta["argv"]
    store = SQLiteStore(root / "runpoint.db")
    try:
        params = store.get_params(run_id)
        assert params["deployment.api_key"] == MASK and params["data.hf_token"] == MASK
        assert params["training.seed"] == 5
        record = store.get_run(run_id)
        assert record.project == "secrets" and record.tags == ("s",)
        printed_hash = next(line for line in result.stdout.splitlines() if line.startswith("hash ")).split()[1]
        assert record.config_hash == printed_hash
    finally:
        store.close()


def test_init_takes_run_fields_from_the_experiment_section(root: Path, store_at) -> None:
    cfg = rp.load_config(overrides=[
        "experiment.project=vision", "experiment.name=baseline", "experiment.tags=[cnn, small]",
        "experiment.notes=first try", "experiment.group=sweep-1", f"experiment.root={root}",
    ], env={})
    with rp.init(config=cfg, console=False) as run:
        pass
    record = store_at().get_run(run.id)
    assert (record.project, record.name, record.tags, record.notes, record.group) == (
        "vision", "baseline", ("cnn", "small"), "first try", "sweep-1"
    )
    assert run.dir.parent == root / "vision"
    assert record.config_hash == config_hash(cfg)


def test_arguments_to_init_win_over_the_config(root: Path, store_at) -> None:
    cfg = rp.ProjectConfig(experiment={"project": "from-config", "name": "cfg-name", "tags": ["a"], "notes": "n"})
    with rp.init("explicit", name="explicit-name", config=cfg, tags=[], notes="", root=root, console=False) as run:
        pass
    record = store_at().get_run(run.id)
    assert (record.project, record.name, record.tags, record.notes) == ("explicit", "explicit-name", (), "")


def test_a_plain_dict_with_an_experiment_section_works_too(root: Path, store_at) -> None:
    with rp.init(config={"experiment": {"project": "dicts", "tags": ["d"]}, "lr": 0.1}, root=root, console=False) as run:
        pass
    assert store_at().get_run(run.id).project == "dicts"


def test_without_a_project_anywhere_init_says_where_to_put_one(root: Path) -> None:
    with pytest.raises(rp.InvalidArgumentError, match=r"project: is required: pass rp.init\(project=...\), or set "
                                                      r"experiment.project in the config"):
        rp.init(config=rp.ProjectConfig(), root=root)
    with pytest.raises(rp.InvalidArgumentError, match="project: is required"):
        rp.init(root=root)
    assert not root.exists() or not any(root.glob("*/*"))  # nothing half-made


def test_resume_latest_finds_the_project_in_the_config(root: Path, store_at) -> None:
    cfg = rp.ProjectConfig(experiment={"project": "resumable", "root": root})  # a Path is fine
    with rp.init(config=cfg, console=False) as first:
        first.log({"x": 1.0}, step=0)
    with rp.init(config=cfg, resume="latest", console=False) as second:
        assert second.id == first.id
    assert store_at().get_run(first.id).resume_count == 1


def test_the_recorded_hash_is_the_hash_of_the_config(root: Path, store_at, tmp_path: Path) -> None:
    spelled_out = tmp_path / "full.yaml"
    rp.config.dump_config(rp.ProjectConfig(experiment={"project": "h"}), spelled_out)
    short = tmp_path / "short.yaml"
    short.write_text("experiment: {project: h}\n")
    ids = []
    for path in (spelled_out, short):
        with rp.init(config=rp.load_config(path, env={}), root=root, console=False) as run:
            ids.append(run.id)
    store = store_at()
    hashes = {store.get_run(run_id).config_hash for run_id in ids}
    assert hashes == {config_hash(rp.load_config(short, env={}))}


@pytest.mark.parametrize(
    ("experiment", "env", "sampled"),
    [
        ({"log_system_metrics": False, "system_metrics_interval": 0.05}, None, False),
        ({"system_metrics_interval": 0.05}, None, True),
        ({"system_metrics_interval": 0.05}, "off", False),  # the config says how often, the environment says off
        ({"log_system_metrics": True, "system_metrics_interval": 0.05}, "off", True),  # the config says on
        ({}, "off", False),  # schema defaults do not override the environment
    ],
)
def test_system_metrics_follow_what_the_config_sets(
    root: Path, store_at, monkeypatch: pytest.MonkeyPatch, experiment: dict, env: str | None, sampled: bool
) -> None:
    import time

    if env is None:
        monkeypatch.delenv("RUNPOINT_SYSTEM_METRICS", raising=False)
    else:
        monkeypatch.setenv("RUNPOINT_SYSTEM_METRICS", env)
    cfg = rp.ProjectConfig(experiment={"project": "sys", **experiment})
    with rp.init(config=cfg, root=root, console=False) as run:
        run.log({"x": 1.0}, step=0)
        time.sleep(0.5)
    keys = set(store_at().metric_stats(run.id))
    assert any(key.startswith("system/") for key in keys) is sampled, keys
