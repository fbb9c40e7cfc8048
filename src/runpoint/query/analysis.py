"""Reading metrics the way people look at them: smoothed, on an axis, aligned, at their best.

- :func:`ema` and :func:`moving_average` smooth a series (NaN and infinities pass through
  and do not disturb their neighbours);
- :func:`x_values` puts a series on the ``step``, ``epoch`` or ``time`` axis (seconds
  since the run started; the epoch axis reads the run's ``epoch`` metric);
- :func:`align` samples one series at the steps of another, e.g. the (smoothed) training
  loss at each step where validation ran, so that ``val - train`` is a fair gap;
- :func:`best_metrics` gives the best value and its step of every metric whose direction
  is known: declared with ``run.monitor``, or read from its name (``loss``, ``error``...
  lower is better; ``acc``, ``f1``, ``auc``... higher is better).

Pure Python over :class:`~runpoint.store.MetricSeries`; no numpy needed.

Example::

    series = query.metric_history(store, run.id, "train/loss")
    smooth = analysis.ema(series.values, smoothing=0.9)
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Literal, Sequence

from .._util.metric_mode import infer_mode
from ..errors import InvalidArgumentError
from ..store import MetricSeries, MetricStats, RunRecord, Store

Axis = Literal["step", "epoch", "time"]
AXES: tuple[str, ...] = ("step", "epoch", "time")
EPOCH_KEY = "epoch"



def ema(values: Sequence[float], smoothing: float = 0.6) -> list[float]:
    """Exponential moving average, debiased at the start (TensorBoard's smoothing).

    ``smoothing`` in [0, 1): 0 returns the values, 0.99 is very smooth. Non-finite
    values are returned as they are and skipped by the average.

    Example::

        ema([1.0, 0.0, 0.0], 0.5) == [1.0, 1 / 3, 1 / 7]
    """
    if not 0.0 <= smoothing < 1.0:
        raise InvalidArgumentError("smoothing", f"must be in [0, 1), got {smoothing!r}")
    smoothed: list[float] = []
    last = 0.0
    finite_seen = 0
    for value in values:
        if not math.isfinite(value):
            smoothed.append(value)
            continue
        finite_seen += 1
        last = last * smoothing + (1.0 - smoothing) * value
        smoothed.append(last / (1.0 - smoothing**finite_seen) if smoothing else value)
    return smoothed


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` finite values before it.

    The first points average what there is; non-finite values are returned as they are
    and left out of every window.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidArgumentError("window", f"must be a positive int, got {window!r}")
    averaged: list[float] = []
    kept: list[float] = []
    total = 0.0
    compensation = 0.0  # Kahan summation keeps long windows exact enough
    for value in values:
        if not math.isfinite(value):
            averaged.append(value)
            continue
        for delta in (value, -kept[-window]) if len(kept) >= window else (value,):
            y = delta - compensation
            t = total + y
            compensation = (t - total) - y
            total = t
        kept.append(value)
        averaged.append(total / min(len(kept), window))
    return averaged


def sorted_by_step(series: MetricSeries) -> MetricSeries:
    """The points ordered by step (stable: points logged at one step keep their order)."""
    steps = series.steps
    if all(a <= b for a, b in zip(steps, steps[1:])):
        return series
    order = sorted(range(len(steps)), key=steps.__getitem__)
    result = MetricSeries()
    for index in order:
        result.append(steps[index], series.values[index], series.times[index])
    return result


def value_at(series: MetricSeries, step: int) -> float:
    """The value of the last point at or before ``step`` (``series`` sorted by step); NaN if none."""
    index = bisect.bisect_right(series.steps, step) - 1
    return series.values[index] if index >= 0 else math.nan


def align(target: MetricSeries, reference: MetricSeries, smoothing: float = 0.0) -> list[tuple[int, float, float]]:
    """``(step, target value, reference value)`` at each step of ``target``.

    The reference (e.g. the training loss) is smoothed with :func:`ema` first, then read at
    its last point at or before the step (validation at step 500 meets the training loss
    of step 500, or the closest step before it). Steps before the reference's first
    point get NaN.
    """
    reference = sorted_by_step(reference)
    if smoothing:
        reference = MetricSeries(reference.steps, _array(ema(reference.values, smoothing)), reference.times)
    target = sorted_by_step(target)
    return [(step, value, value_at(reference, step)) for step, value in zip(target.steps, target.values)]


def gap(target: MetricSeries, reference: MetricSeries, smoothing: float = 0.0) -> MetricSeries:
    """``target - reference`` at the steps of ``target`` (the generalisation gap: val - train)."""
    result = MetricSeries()
    times = dict(zip(target.steps, target.times))
    for step, value, ref in align(target, reference, smoothing):
        result.append(step, value - ref, times[step])
    return result


def _array(values: list[float]):  # type: ignore[no-untyped-def]
    from array import array

    return array("d", values)


def x_values(store: Store, run: RunRecord, series: MetricSeries, axis: str = "step") -> list[float]:
    """Where each point of ``series`` sits on ``axis``: its step, epoch, or seconds since the run began.

    The epoch of a step is the run's ``epoch`` metric at its last point at or before
    that step (so epochs logged once per epoch, or every step, both work).
    """
    if axis == "step":
        return [float(step) for step in series.steps]
    if axis == "time":
        return [at - run.created_at for at in series.times]
    if axis == "epoch":
        epochs = store.read_metric(run.id, EPOCH_KEY)
        if not len(epochs):
            raise InvalidArgumentError("axis", f"run {run.id} logged no {EPOCH_KEY!r} metric to put on the epoch axis")
        epochs = sorted_by_step(epochs)
        return [value_at(epochs, step) for step in series.steps]
    raise InvalidArgumentError("axis", f"{axis!r} is not one of {', '.join(AXES)}")


@dataclass(frozen=True)
class BestMetric:
    """The best value of one metric, where it was reached, and where the run ended."""

    key: str
    mode: Literal["min", "max"]
    value: float | None
    step: int | None
    last: float
    last_step: int
    monitored: bool  # declared with run.monitor (else the direction was read from the name)


def _declared_mode(best: float, stat: MetricStats) -> Literal["min", "max"] | None:
    """The direction run.monitor kept a best in: whichever extreme it equals."""
    if best == stat.min and best != stat.max:
        return "min"
    if best == stat.max and best != stat.min:
        return "max"
    return None


def best_metrics(store: Store, run_id: str) -> list[BestMetric]:
    """The best value and step of every metric with a known direction, sorted by key."""
    stats = store.metric_stats(run_id)
    summary = store.get_summary(run_id)
    found = []
    for key, stat in stats.items():
        declared = summary.get(f"best/{key}")
        monitored = isinstance(declared, (int, float)) and not isinstance(declared, bool)
        mode = (_declared_mode(declared, stat) if isinstance(declared, (int, float)) and monitored else None) \
            or infer_mode(key)
        if mode is None:
            continue
        value, step = (stat.min, stat.min_step) if mode == "min" else (stat.max, stat.max_step)
        found.append(BestMetric(key, mode, value, step, stat.last, stat.last_step, monitored))
    return found
