"""Evaluation trends: divergence (worse at every evaluation, N in a row) and plateau (no new best for N steps).

A key's direction is its configured mode, or read from its name (:func:`.mode.infer_mode`);
keys without one are skipped. Each alerts once, and again only after the key improved.

Example::

    divergence = DivergenceDetector(evaluations=3)
    divergence.observe("val/loss", [100, 200, 300, 400], [0.5, 0.6, 0.7, 0.8])   # 3 rises: one Finding at step 400
    plateau = PlateauDetector(patience_steps=1000)
    plateau.observe("val/acc", [0, 500, 1000], [0.9, 0.8, 0.85])                   # one Finding at step 1000
"""

from __future__ import annotations

import math
from typing import Sequence

from .findings import Finding, Level, format_number
from .mode import Mode, mode_for


class DivergenceDetector:
    """Alerts when a key is worse than its previous value ``evaluations`` times in a row."""

    kind = "divergence"

    def __init__(self, *, evaluations: int = 5, mode: str = "auto", level: Level = "warning") -> None:
        self.evaluations, self.mode, self.level = evaluations, mode, level
        self._state: dict[str, list] = {}  # key -> [mode, last value, worse in a row, alerted]

    def observe(self, key: str, steps: Sequence[int], values: Sequence[float]) -> list[Finding]:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [mode_for(key, self.mode), None, 0, False]
        mode = state[0]
        if mode is None:
            return []
        found: list[Finding] = []
        last, worse, alerted = state[1], state[2], state[3]
        for step, value in zip(steps, values):
            if not math.isfinite(value):
                continue
            if last is not None and (value > last if mode == "min" else value < last):
                worse += 1
                if worse >= self.evaluations and not alerted:
                    alerted = True
                    direction = "rose" if mode == "min" else "fell"
                    found.append(Finding(self.kind, self.level, f"{key} is diverging",
                                         f"{key} {direction} {self.evaluations} evaluations in a row, to "
                                         f"{format_number(value)} at step {step}", step, key))
            elif last is not None and value != last:
                worse, alerted = 0, False
            last = value
        state[1], state[2], state[3] = last, worse, alerted
        return found


class PlateauDetector:
    """Alerts when a key has not reached a new best for ``patience_steps`` steps."""

    kind = "plateau"

    def __init__(self, *, patience_steps: int = 10_000, min_delta: float = 0.0, mode: str = "auto",
                 level: Level = "info") -> None:
        self.patience, self.min_delta, self.mode, self.level = patience_steps, min_delta, mode, level
        self._state: dict[str, list] = {}  # key -> [mode, best, step of best, alerted]

    def _better(self, value: float, best: float, mode: Mode) -> bool:
        margin = abs(best) * self.min_delta
        return value < best - margin if mode == "min" else value > best + margin

    def observe(self, key: str, steps: Sequence[int], values: Sequence[float]) -> list[Finding]:
        state = self._state.get(key)
        if state is None:
            state = self._state[key] = [mode_for(key, self.mode), None, None, False]
        mode: Mode | None = state[0]
        if mode is None:
            return []
        found: list[Finding] = []
        best, best_step, alerted = state[1], state[2], state[3]
        for step, value in zip(steps, values):
            if not math.isfinite(value):
                continue
            if best is None or self._better(value, best, mode):
                best, best_step, alerted = value, step, False
            elif not alerted and step - best_step >= self.patience:
                alerted = True
                found.append(Finding(self.kind, self.level, f"{key} has plateaued",
                                     f"no better {key} than {format_number(best)} (step {best_step}) for "
                                     f"{step - best_step} steps", step, key))
        state[1], state[2], state[3] = best, best_step, alerted
        return found
