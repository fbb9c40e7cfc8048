"""Every field the demo records acts, or is refused before anything is recorded (issue 12.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

import runpoint as rp
from runpoint.config import flatten, to_plain, with_overrides
from runpoint.store import RunQuery

from .conftest import cli

pytest.importorskip("torch")
pytest.importorskip("sklearn")


def _kept_steps(checkpoints: Path) -> list[int]:
    return sorted(int(path.name.split("-")[1]) for path in checkpoints.glob("step-*"))


def test_every_field_of_the_demo_config_acts_or_is_refused() -> None:
    from runpoint.demo import demo_config
    from runpoint.demo.fields import ACTS, FIXED

    fields = set(flatten(to_plain(demo_config())))
    assert not set(ACTS) & set(FIXED)
    assert fields == set(ACTS) | set(FIXED), fields ^ (set(ACTS) | set(FIXED))


@pytest.mark.slow  # a one-epoch demo in a subprocess
def test_optimizer_keep_last_and_save_steps_act(root: Path, store_at) -> None:
    result = cli(root, "demo", "--epochs", "1", "training.optimizer=sgd", "training.checkpoint.keep_last=5",
                 "training.checkpoint.save_steps=5", "training.checkpoint.keep_best=null")
    assert result.returncode == 0, result.stderr
    (run,) = store_at().list_runs(RunQuery())
    checkpoints = root / "demo" / run.id / "checkpoints"
    # 1438 training digits in batches of 64: steps 0..22; saved at 0, 5, 10, 15, 20 and the epoch's end, 22
    assert _kept_steps(checkpoints) == [5, 10, 15, 20, 22]
    state = rp.load_checkpoint(checkpoints)
    group = state["optimizer"]["param_groups"][0]
    assert "momentum" in group and "betas" not in group  # SGD's (its momentum cycled by onecycle), not AdamW's
    assert all(set(s) == {"momentum_buffer"} for s in state["optimizer"]["state"].values())


def test_model_schedule_data_and_logging_fields_act(root: Path, store_at) -> None:
    from runpoint.demo import demo_config, train

    cfg = with_overrides(demo_config(), [
        f"experiment.root={root}", "training.max_steps=4", "model.hidden_sizes=[16]", "model.batch_norm=true",
        "model.activation=gelu", "training.optimizer=rmsprop", "training.scheduler=linear", "training.warmup_steps=2",
        "training.max_grad_norm=0.5", "data.test_fraction=0.1", "data.drop_last=true", "data.shuffle=false",
        "experiment.log_interval=3", "experiment.log_gradients=true", "experiment.watch_interval=1",
        "training.checkpoint.monitor=val/acc", "training.checkpoint.mode=max", "training.checkpoint.save_steps=1",
    ])
    run = train(cfg, verbose=False)
    store = store_at()
    lrs = store.read_metric(run.id, "train/lr")
    assert list(lrs.steps) == [0, 3]  # log_interval
    assert list(lrs.values) == pytest.approx([1.5e-3, 1.5e-3])  # half-way through the warm-up, then half-way down
    keys = store.metric_keys(run.id)
    assert {"test/loss", "test/acc", "watch/grad_norm"} <= set(keys)
    checkpoints = root / "demo" / run.id / "checkpoints"
    state = rp.load_checkpoint(checkpoints)
    assert "1.running_mean" in state["model"] and "square_avg" in next(iter(state["optimizer"]["state"].values()))
    saved = rp.CheckpointManager(checkpoints).list()
    best = max(saved, key=lambda info: (info.metrics["val/acc"], -info.step))  # ties go to the earlier save
    assert (checkpoints / "best").read_text().strip() == best.name  # ranked by val/acc, highest first


@pytest.mark.parametrize("override, line", [
    ("data.num_workers=2", "runpoint: invalid config: data.num_workers: got 2, the demo loads its in-memory data "
                           "in the training process; leave it at 0"),
    ("training.scheduler=plateau", "runpoint: invalid config: training.scheduler: got plateau, the demo supports "
                                   "none, onecycle, cosine, linear"),
])
def test_a_setting_the_demo_cannot_honour_is_refused(root: Path, override: str, line: str) -> None:
    result = cli(root, "demo", override)
    assert result.returncode == 1
    assert result.stderr.strip() == line
    assert not (root / "demo").exists()  # nothing recorded


def test_the_dashboard_launch_form_refuses_it_too() -> None:
    from runpoint.server.entry_points import demo_entry_point

    validator = demo_entry_point().validator
    validator({"training": {"epochs": 3}})
    with pytest.raises(rp.ConfigError, match="optimization.compile: got true, the demo does not compile the model"):
        validator({"optimization": {"compile": True}})
