"""The mean curve of a metric across repeated runs (seeds), with a band, aligned by step.

Each run's series is read at every step any of the runs logged (its last point at or
before the step, so a run evaluated at 99 and another at 100 still meet), but never
before its first point nor after its last: a run that stopped early leaves the mean
instead of holding it up. The band is the min-max across runs and the t-distribution
confidence interval of the mean at each step.

Example::

    curve = mean_curve(store, group.runs, "val/acc", points=500)
    plt.fill_between(curve.steps, curve.low, curve.high); plt.plot(curve.steps, curve.mean)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ..errors import InvalidArgumentError
from ..store import RunRecord, Store
from .analysis import sorted_by_step
from .stats import numpy_module, t_quantile


@dataclass
class MeanCurve:
    """Per step: how many runs have a value, their mean, min, max and CI of the mean (None: no value)."""

    key: str
    steps: list[int]
    n: list[int]
    mean: list[float | None]
    low: list[float | None]  # min across runs
    high: list[float | None]  # max across runs
    ci_low: list[float | None]
    ci_high: list[float | None]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mean_curve(store: Store, runs: Sequence[RunRecord], key: str, *, points: int | None = None,
               confidence: float = 0.95) -> MeanCurve:
    """``key`` averaged across ``runs`` at the union of their steps (``points``: at most this many, evenly spread)."""
    if points is not None and points < 2:
        raise InvalidArgumentError("points", f"must be at least 2, got {points}")
    np = numpy_module()
    series = [sorted_by_step(store.read_metric(run.id, key)) for run in runs]
    series = [s for s in series if len(s)]
    if not series:
        return MeanCurve(key, [], [], [], [], [], [], [])
    steps = np.unique(np.concatenate([np.asarray(s.steps, dtype=np.int64) for s in series]))
    if points is not None and len(steps) > points:
        steps = steps[np.unique(np.linspace(0, len(steps) - 1, points).round().astype(np.int64))]
    table = np.full((len(series), len(steps)), np.nan)
    for row, s in enumerate(series):
        own = np.asarray(s.steps, dtype=np.int64)
        index = np.searchsorted(own, steps, side="right") - 1
        inside = (index >= 0) & (steps <= own[-1])
        table[row, inside] = np.asarray(s.values, dtype=float)[index[inside]]
    table[~np.isfinite(table)] = np.nan
    return _summarize_columns(key, steps, table, confidence)


def _summarize_columns(key: str, steps: Any, table: Any, confidence: float) -> MeanCurve:
    np = numpy_module()
    import warnings

    n = np.sum(~np.isnan(table), axis=0)
    with warnings.catch_warnings():  # all-NaN columns give NaN, which become None below
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(table, axis=0)
        low, high = np.nanmin(table, axis=0), np.nanmax(table, axis=0)
        std = np.nanstd(table, axis=0, ddof=1)
        quantile = t_quantile(0.5 + confidence / 2, np.maximum(n - 1, 1))
        half = np.where(n >= 2, quantile * std / np.sqrt(np.maximum(n, 1)), np.nan)

    def listed(values: Any) -> list[float | None]:
        return [float(v) if math.isfinite(v) else None for v in values.tolist()]

    return MeanCurve(key, [int(s) for s in steps.tolist()], [int(c) for c in n.tolist()], listed(mean), listed(low),
                     listed(high), listed(mean - half), listed(mean + half))
