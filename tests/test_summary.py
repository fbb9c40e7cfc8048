"""run.summary persists what you set and derives last/min/max of every metric."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import runpoint as rp
from runpoint import query


def test_set_values_persist_and_metrics_are_summarised(root, store_at) -> None:
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        for step, loss in enumerate([3.0, 1.0, math.nan, 2.0]):
            run.log({"loss": loss}, step=step)
        run.summary["best/acc"] = np.float32(0.5)
        run.summary["epochs"] = torch.tensor(3)
        run.summary["info"] = {"arch": "mlp", "sizes": [1, 2]}
        assert run.summary["loss"] == 2.0
        assert run.summary["loss.min"] == 1.0 and run.summary["loss.max"] == 3.0
        assert run.summary["best/acc"] == 0.5 and run.summary["epochs"] == 3
        nonfinite_mark = {"first_nonfinite/step", "first_nonfinite/key", "first_nonfinite/value"}  # the NaN guard
        assert set(run.summary) == {"loss", "loss.min", "loss.max", "best/acc", "epochs", "info"} | nonfinite_mark
        run.summary["temp"] = 1
        del run.summary["temp"]
        with pytest.raises(KeyError, match="derived"):
            del run.summary["loss"]
    store = store_at()
    assert store.get_summary("r1") == {
        "best/acc": 0.5, "epochs": 3, "info": {"arch": "mlp", "sizes": [1, 2]},
        "first_nonfinite/step": 2, "first_nonfinite/key": "loss", "first_nonfinite/value": "NaN",
    }
    full = query.full_summary(store, "r1")
    assert full["loss"] == 2.0 and full["loss.min"] == 1.0 and full["best/acc"] == 0.5
    stats = store.metric_stats("r1")["loss"]
    assert (stats.min_step, stats.max_step, stats.last_step, stats.count) == (1, 0, 3, 4)


def test_a_value_you_set_wins_over_the_derived_one(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"loss": 1.0})
        run.summary["loss"] = 0.25
        assert run.summary["loss"] == 0.25


@pytest.mark.parametrize("bad", [object(), np.ones(3), {1, 2}])
def test_unstorable_summary_values_raise(root, bad) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(TypeError, match="'x'"):
            run.summary["x"] = bad


def test_all_nan_metric_has_no_min_or_max(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"bad": math.nan})
        assert math.isnan(run.summary["bad"])
        assert run.summary["bad.min"] is None and run.summary["bad.max"] is None


def test_setting_the_summary_after_finish_raises_and_reading_still_works(root, store_at) -> None:
    with rp.init(project="p", id="done", root=root, console=False, system_metrics=False) as run:
        run.log({"loss": 0.5}, step=0)
        run.summary["best"] = 1
    with pytest.raises(rp.RunpointError, match="finished"):
        run.summary["late"] = 2  # would otherwise wait in a closed writer's queue, never stored
    assert run.summary["best"] == 1 and run.summary["loss"] == 0.5
    assert "late" not in query.full_summary(store_at(), "done")
