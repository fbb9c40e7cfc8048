"""The NaN/Inf guard: marks where a loss first became non-finite.

It watches every batch the writer commits (a listener on the writer thread, so it costs
the training loop nothing and sees CUDA values once they are read). The first NaN or
infinity in a metric whose key mentions ``loss`` (outside ``watch/``, ``system/`` and
``perf/``) is recorded once per run in the summary::

    first_nonfinite/step    the step
    first_nonfinite/key     the metric, e.g. "train/loss"
    first_nonfinite/value   "NaN", "Infinity" or "-Infinity"

and a warning names it. Plots and reports draw a marker there. The scan is the one the
alerts' NaN detector uses (:mod:`runpoint.alerts.nonfinite`), which alerts on any metric.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from ..alerts.nonfinite import first_nonfinite, spelled

if TYPE_CHECKING:
    from ..store.base import WriteBatch

logger = logging.getLogger("runpoint")

SUMMARY_STEP = "first_nonfinite/step"
SUMMARY_KEY = "first_nonfinite/key"
SUMMARY_VALUE = "first_nonfinite/value"
_IGNORED_PREFIXES = ("watch/", "system/", "perf/")


def is_guarded(key: str) -> bool:
    return "loss" in key.lower() and not key.startswith(_IGNORED_PREFIXES)


class NonFiniteGuard:
    """A writer listener that records the first non-finite loss of a run."""

    def __init__(self, set_summary: Callable[[str, Any], None], summary: dict[str, Any]) -> None:
        self._set_summary = set_summary  # run.summary's setter: persisted by the writer, visible at once
        self.triggered = SUMMARY_STEP in summary  # a resumed run keeps its first mark

    def __call__(self, run_id: str, batch: "WriteBatch") -> None:
        if self.triggered or not batch.metrics:
            return
        first: tuple[int, str, float] | None = None
        for key, series in batch.metrics.items():
            if not is_guarded(key):
                continue
            found = first_nonfinite(series.steps, series.values)  # all finite: one pass in C
            if found is not None and (first is None or found[0] < first[0]):
                first = (found[0], key, found[1])
        if first is None:
            return
        self.triggered = True
        step, key, value = first
        self._set_summary(SUMMARY_STEP, step)
        self._set_summary(SUMMARY_KEY, key)
        self._set_summary(SUMMARY_VALUE, spelled(value))
        logger.warning("runpoint: %s became %s at step %d (run %s)", key, spelled(value), step, run_id)
