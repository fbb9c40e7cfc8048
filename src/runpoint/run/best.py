"""``run.monitor(key, mode)``: the best value of a metric and its step, kept in the summary.

A listener on the writer thread compares each committed batch of a monitored metric with
the best so far and, on an improvement, sets ``best/<key>`` and ``best/<key>.step`` in the
summary (so ``runpoint show``, ``ls --columns summary.best/val/loss`` and reports see it).
NaN never wins; on a tie the earlier step stays.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Literal

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..store.base import MetricStats, WriteBatch

Mode = Literal["min", "max"]


def summary_keys(key: str) -> tuple[str, str]:
    return f"best/{key}", f"best/{key}.step"


def _better(mode: str, value: float, than: float | None) -> bool:
    if value != value:
        return False
    if than is None:
        return True
    return value < than if mode == "min" else value > than


class BestTracker:
    """Keeps ``best/<key>`` and ``best/<key>.step`` of monitored metrics up to date."""

    def __init__(self, set_summary: Callable[[str, Any], None], summary: dict[str, Any]) -> None:
        self._set_summary = set_summary  # run.summary's setter: persisted by the writer, visible at once
        self._lock = threading.Lock()
        self._modes: dict[str, str] = {}
        self._best: dict[str, tuple[float, int]] = {}
        self._summary = summary  # what the run resumed with: earlier bests still count

    def add(self, key: str, mode: str, stats: "MetricStats | None") -> None:
        """Monitor ``key``; ``stats`` are the points stored so far."""
        if not isinstance(key, str) or not key:
            raise InvalidArgumentError("key", "must be a non-empty metric key")
        if mode not in ("min", "max"):
            raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {mode!r}")
        with self._lock:
            if self._modes.get(key, mode) != mode:
                raise InvalidArgumentError("mode", f"{key!r} is already monitored with mode {self._modes[key]!r}")
            self._modes[key] = mode
            value_key, step_key = summary_keys(key)
            earlier = self._summary.get(value_key)
            if isinstance(earlier, (int, float)) and isinstance(self._summary.get(step_key), int):
                self._offer(key, float(earlier), self._summary[step_key], write=False)
            if stats is not None:
                value, step = (stats.min, stats.min_step) if mode == "min" else (stats.max, stats.max_step)
                if value is not None and step is not None:
                    self._offer(key, value, step)

    def _offer(self, key: str, value: float, step: int, write: bool = True) -> None:
        current = self._best.get(key)
        if current is not None and not _better(self._modes[key], value, current[0]):
            return
        if current is None and value != value:
            return
        self._best[key] = (value, step)
        if write:
            value_key, step_key = summary_keys(key)
            self._set_summary(value_key, value)
            self._set_summary(step_key, step)

    def __call__(self, run_id: str, batch: "WriteBatch") -> None:
        if not self._modes:
            return
        with self._lock:
            for key, mode in self._modes.items():
                series = batch.metrics.get(key)
                if series is None or not len(series):
                    continue
                pick = min if mode == "min" else max
                finite = [i for i, v in enumerate(series.values) if v == v]
                if finite:
                    index = pick(finite, key=series.values.__getitem__)
                    self._offer(key, series.values[index], series.steps[index])
