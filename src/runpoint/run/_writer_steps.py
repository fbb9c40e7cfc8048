"""The writer's step-order check: each key's steps should increase.

Checked on the writer thread, once per batch, never in ``run.log``. A key logged at a step
at or below its previous one is warned about once; both points are kept.
"""

from __future__ import annotations

import logging
from array import array
from itertools import islice
from operator import lt

from ..store.base import MetricSeries

logger = logging.getLogger("runpoint")


class StepOrder:
    """Per key, its last step stored or queued; warns once per key whose steps do not increase."""

    __slots__ = ("run_id", "last", "warned", "unchecked")

    def __init__(self, run_id: str, last_steps: dict[str, int] | None) -> None:
        self.run_id = run_id
        self.last: dict[str, int] = dict(last_steps or {})
        self.warned: set[str] = set()
        self.unchecked: set[str] = set()  # system metrics, step timer, watch: runpoint picks their steps

    def check(self, columns: dict[str, MetricSeries]) -> None:
        """Warn once per key whose steps do not increase; remember each key's last step."""
        last, unchecked = self.last, self.unchecked
        increasing: dict[int, bool] = {}  # keys logged together share one steps array: check it once
        for key, series in columns.items():
            if key in unchecked:
                continue
            steps = series.steps
            ok = increasing.get(id(steps))
            if ok is None:
                ok = increasing[id(steps)] = all(map(lt, steps, islice(steps, 1, None)))
            before = last.get(key)
            if (not ok or (before is not None and steps[0] <= before)) and key not in self.warned:
                self._warn(key, before, steps)
            last[key] = steps[-1]

    def _warn(self, key: str, before: int | None, steps: array) -> None:
        for step in steps:
            if before is not None and step <= before:
                self.warned.add(key)
                logger.warning(
                    "runpoint: run %s logged %r at step %d after step %d; both points are kept. A metric's "
                    "steps should increase: to log earlier steps again, resume the run (rp.init(resume=...)) "
                    "or restore a checkpoint, which drops the later points. (Said once per key.)",
                    self.run_id, key, step, before,
                )
                return
            before = step
