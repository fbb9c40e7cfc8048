"""NaN and infinity in metrics: the scan the run's NaN guard shares, and the alert detector.

:class:`NonFiniteDetector` alerts once per key when it becomes NaN or infinite, and again
only after the key was finite in between. The common case (every value finite) costs one
``sum`` in C per key and batch.

Example::

    detector = NonFiniteDetector(level="error")
    detector.observe("train/loss", [0, 1, 2], [0.5, float("nan"), float("nan")])
    # [Finding(kind='nonfinite', level='error', title='train/loss became NaN at step 1', ...)]
"""

from __future__ import annotations

import math
from typing import Sequence

from .findings import Finding, Level

KIND = "nonfinite"


def all_finite(values: Sequence[float]) -> bool:
    """True when no value is NaN or infinite (one pass in C; a sum that overflows is checked again)."""
    total = sum(values)
    if total == total and total not in (math.inf, -math.inf):
        return True
    return all(math.isfinite(value) for value in values)


def spelled(value: float) -> str:
    """``"NaN"``, ``"Infinity"`` or ``"-Infinity"``."""
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def first_nonfinite(steps: Sequence[int], values: Sequence[float]) -> tuple[int, float] | None:
    """The step and value of the first non-finite point, or None."""
    if all_finite(values):
        return None
    for step, value in zip(steps, values):
        if not math.isfinite(value):
            return step, value
    return None


class NonFiniteDetector:
    """Alerts when a key turns NaN/Inf; once per key until it is finite again."""

    def __init__(self, level: Level = "error") -> None:
        self.level = level
        self._bad: set[str] = set()  # keys whose last value was not finite

    def observe(self, key: str, steps: Sequence[int], values: Sequence[float]) -> list[Finding]:
        bad = key in self._bad
        if not bad and all_finite(values):
            return []
        found: list[Finding] = []
        isfinite = math.isfinite
        for step, value in zip(steps, values):
            if isfinite(value):
                bad = False
            elif not bad:
                bad = True
                found.append(Finding(KIND, self.level, f"{key} became {spelled(value)} at step {step}",
                                     f"{key} = {spelled(value)} at step {step}", step, key))
        if bad:
            self._bad.add(key)
        else:
            self._bad.discard(key)
        return found
