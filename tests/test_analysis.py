"""Smoothing, axes, alignment of validation with training, and best values, against direct computations."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.query import analysis
from runpoint.store import MetricSeries

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _series(steps: list[int], values: list[float]) -> MetricSeries:
    return MetricSeries(array("q", steps), array("d", values), array("d", [float(s) for s in steps]))


def test_ema_is_tensorboards_debiased_average() -> None:
    assert analysis.ema([1.0, 0.0, 0.0], 0.5) == [1.0, 1 / 3, 1 / 7]
    assert analysis.ema([3.0, 4.0], 0.0) == [3.0, 4.0]
    values = list(np.random.default_rng(0).normal(size=50))
    weight, last, expected = 0.9, 0.0, []
    for n, value in enumerate(values, start=1):
        last = weight * last + (1 - weight) * value
        expected.append(last / (1 - weight**n))
    assert analysis.ema(values, weight) == pytest.approx(expected)


def test_non_finite_values_pass_through_without_disturbing_their_neighbours() -> None:
    smoothed = analysis.ema([1.0, math.nan, 1.0, math.inf], 0.9)
    assert smoothed[0] == 1.0 and math.isnan(smoothed[1]) and smoothed[2] == pytest.approx(1.0) and smoothed[3] == math.inf
    averaged = analysis.moving_average([1.0, math.nan, 3.0, 5.0], 2)
    assert averaged[0] == 1.0 and math.isnan(averaged[1]) and averaged[2:] == [2.0, 4.0]


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=200), st.integers(min_value=1, max_value=30))
def test_moving_average_matches_a_direct_computation(values, window) -> None:
    expected = [float(np.mean(values[max(0, i - window + 1): i + 1])) for i in range(len(values))]
    assert analysis.moving_average(values, window) == pytest.approx(expected, rel=1e-9, abs=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=1, max_size=200), st.floats(min_value=0.0, max_value=0.99))
def test_smoothing_stays_within_the_range_of_the_values_and_keeps_constants(values, weight) -> None:
    smoothed = analysis.ema(values, weight)
    assert len(smoothed) == len(values)
    low, high = min(values), max(values)
    slack = 1e-9 * max(1.0, abs(low), abs(high))
    assert all(low - slack <= v <= high + slack for v in smoothed)
    assert analysis.ema([values[0]] * 10, weight) == pytest.approx([values[0]] * 10)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2.0])
def test_bad_smoothing_and_windows_are_refused(bad) -> None:
    with pytest.raises(rp.InvalidArgumentError, match="smoothing"):
        analysis.ema([1.0], bad)
    with pytest.raises(rp.InvalidArgumentError, match="window"):
        analysis.moving_average([1.0], 0)


def test_validation_is_aligned_with_the_training_step_it_was_computed_at() -> None:
    train = _series([0, 1, 2, 3, 4, 5], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    val = _series([2, 5, 7], [4.5, 1.5, 0.5])
    assert analysis.align(val, train) == [(2, 4.5, 4.0), (5, 1.5, 1.0), (7, 0.5, 1.0)]
    gap = analysis.gap(val, train)
    assert list(gap.steps) == [2, 5, 7] and list(gap.values) == [0.5, 0.5, -0.5]
    early = analysis.align(_series([0], [1.0]), _series([3], [2.0]))
    assert early[0][:2] == (0, 1.0) and math.isnan(early[0][2])  # no training point yet
    smoothed = analysis.align(val, train, smoothing=0.5)
    assert smoothed[0][2] == pytest.approx(analysis.ema([6.0, 5.0, 4.0], 0.5)[-1])


def test_series_logged_out_of_step_order_are_sorted_stably() -> None:
    shuffled = _series([3, 1, 2, 1], [30.0, 10.0, 20.0, 11.0])
    ordered = analysis.sorted_by_step(shuffled)
    assert list(ordered.steps) == [1, 1, 2, 3] and list(ordered.values) == [10.0, 11.0, 20.0, 30.0]


def test_metrics_on_step_epoch_and_wall_time_axes(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        for step in range(6):
            run.log({"train/loss": 1.0 / (step + 1), "epoch": step // 2}, step=step)
        run.log({"val/loss": 0.4}, step=3)
        run.flush()
        record = run.store.get_run(run.id)
        val = run.store.read_metric(run.id, "val/loss")
        assert analysis.x_values(run.store, record, val, "step") == [3.0]
        assert analysis.x_values(run.store, record, val, "epoch") == [1.0]
        loss = run.store.read_metric(run.id, "train/loss")
        seconds = analysis.x_values(run.store, record, loss, "time")
        assert seconds == [t - record.created_at for t in loss.times] and all(s >= 0 for s in seconds)
        with pytest.raises(rp.InvalidArgumentError, match="axis"):
            analysis.x_values(run.store, record, val, "hours")
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"x": 1.0})
        run.flush()
        with pytest.raises(rp.InvalidArgumentError, match="no 'epoch' metric"):
            analysis.x_values(run.store, run.store.get_run(run.id), run.store.read_metric(run.id, "x"), "epoch")


@pytest.mark.parametrize(
    "key, mode",
    [("train/loss", "min"), ("val/error_rate", "min"), ("val/acc", "max"), ("test/top1", "max"), ("val/f1", "max"),
     ("train/lr", None), ("epoch", None), ("watch/grad_norm", None), ("system/cpu_percent", None), ("perplexity", "min")],
)
def test_the_direction_of_a_metric_is_read_from_its_name(key, mode) -> None:
    assert analysis.infer_mode(key) == mode


def test_best_metrics_give_the_best_value_and_its_step(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        for step, (loss, acc, lr) in enumerate([(1.0, 0.2, 0.1), (0.3, 0.8, 0.1), (0.5, 0.7, 0.01)]):
            run.log({"val/loss": loss, "val/acc": acc, "lr": lr, "custom": -loss}, step=step)
        run.monitor("custom", "max")
        run.flush()
        best = {b.key: b for b in analysis.best_metrics(run.store, run.id)}
    assert set(best) == {"val/loss", "val/acc", "custom"}
    assert (best["val/loss"].value, best["val/loss"].step, best["val/loss"].mode) == (0.3, 1, "min")
    assert (best["val/acc"].value, best["val/acc"].step, best["val/acc"].last) == (0.8, 1, 0.7)
    assert (best["custom"].value, best["custom"].step, best["custom"].mode, best["custom"].monitored) == (-0.3, 1, "max", True)
