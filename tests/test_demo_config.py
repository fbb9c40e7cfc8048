"""The demo trains from a ProjectConfig: its values as before, overrides and config files on top."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from runpoint.config import config_hash, flatten, mask_secrets, to_plain, with_overrides
from runpoint.store import RunQuery

from .conftest import cli

pytest.importorskip("torch")
pytest.importorskip("sklearn")


def test_the_demo_config_keeps_the_demo_values() -> None:
    from runpoint.demo import demo_config

    cfg = demo_config()
    assert cfg.model.hidden_sizes == [128, 64] and cfg.model.dropout_rate == 0.1
    assert (cfg.training.epochs, cfg.training.batch_size, cfg.training.learning_rate, cfg.training.weight_decay) == (
        12, 64, 3e-3, 1e-4
    )
    assert (cfg.data.dataset, cfg.data.val_fraction) == ("sklearn-digits", 0.2)
    assert (cfg.experiment.project, cfg.experiment.tags) == ("demo", ["demo", "mlp"])


@pytest.mark.slow  # a demo process, ~10 s (test_demo covers the command in the default run)
def test_demo_command_records_the_config_and_takes_overrides(root: Path, store_at) -> None:
    result = cli(root, "demo", "--epochs", "1", "model.hidden_sizes=[32]", "training.learning_rate=1e-2")
    assert result.returncode == 0, result.stderr
    store = store_at()
    (run,) = store.list_runs(RunQuery())
    params = store.get_params(run.id)
    assert params["model.hidden_sizes"] == [32] and params["training.learning_rate"] == 0.01
    assert params["training.epochs"] == 1 and params["experiment.project"] == "demo"
    assert run.project == "demo" and set(run.tags) == {"demo", "mlp"}
    recorded = yaml.safe_load((root / "demo" / run.id / "config.yaml").read_text())
    assert set(recorded) == {"model", "training", "data", "experiment", "optimization", "deployment"}
    assert run.config_hash == config_hash(recorded)


def test_demo_command_reports_a_bad_override(root: Path) -> None:
    result = cli(root, "demo", "training.learning_rat=1")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "runpoint: invalid config: training.learning_rat: unknown key; did you mean 'training.learning_rate'?  "
        "[override training.learning_rat=1]"
    )


def test_train_stops_at_max_steps(root: Path, store_at) -> None:
    from runpoint.demo import demo_config, train

    cfg = with_overrides(demo_config(), ["training.max_steps=3", f"experiment.root={root}", "experiment.project=short"])
    run = train(cfg, verbose=False)
    assert run.summary["steps"] == 3
    store = store_at()
    assert store.metric_stats(run.id)["train/loss"].count == 3
    assert store.get_run(run.id).project == "short"
    assert store.get_params(run.id) == flatten(mask_secrets(to_plain(cfg)))


@pytest.mark.slow  # a demo process, ~8 s
def test_demo_config_file_is_merged_over_the_demo_config(root: Path, store_at, tmp_path: Path) -> None:
    """What the dashboard's launch form does: a partial file shaped like DEFAULT_CONFIG."""
    from runpoint.demo import DEFAULT_CONFIG

    form = tmp_path / "launch.yaml"  # the working directory is tmp_path: errors name it relatively
    form.write_text(yaml.safe_dump({**DEFAULT_CONFIG, "training": {**DEFAULT_CONFIG["training"], "epochs": 1}}))
    result = cli(root, "demo", "--config", str(form), "--project", "launched", "--name", "", "model.dropout_rate=0.3")
    assert result.returncode == 0, result.stderr
    store = store_at()
    (run,) = store.list_runs(RunQuery())
    params = store.get_params(run.id)
    assert params["training.epochs"] == 1 and params["model.dropout_rate"] == 0.3
    assert params["training.scheduler"] == "onecycle" and params["model.input_size"] == 64  # the demo's own values
    assert run.project == "launched" and set(run.tags) == {"demo", "mlp"}
    form.write_text("training:\n  epochs: 1\n  batch_size: -4\n")
    bad = cli(root, "demo", "--config", str(form))
    assert bad.returncode == 1
    assert bad.stderr.strip() == (
        "runpoint: invalid config launch.yaml: training.batch_size: got -4, expected a value greater than 0  [launch.yaml:3]"
    )
