"""Loss spikes: a point far above the moving window of the points before it.

For each new point ``x`` of a watched key, with the window's mean ``m`` and standard
deviation ``s`` (of the ``window`` finite points before it): a spike is
``(x - m) / max(s, 1e-3 * |m|, 1e-12) > z_threshold``. The floor keeps a perfectly flat
series from calling a rounding difference a spike. After a spike the key is quiet for
``min_points`` points, so one burst is one alert. Only rises count: a loss falling fast is
good news. Non-finite points are left to the NaN detector.

Example::

    detector = SpikeDetector(window=50, z_threshold=6)
    detector.observe("train/loss", range(100), [1.0] * 99 + [50.0])   # one Finding at step 99
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence

from .findings import Finding, Level, format_number

KIND = "spike"


class _Window:
    __slots__ = ("values", "total", "squares", "quiet", "updates")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.total = 0.0
        self.squares = 0.0
        self.quiet = 0  # points left before another spike may be reported
        self.updates = 0


class SpikeDetector:
    """Per key, a z-score of each point against the ``window`` points before it."""

    def __init__(self, *, window: int = 100, z_threshold: float = 6.0, min_points: int = 20,
                 level: Level = "warning") -> None:
        self.window, self.z_threshold = window, z_threshold
        self.min_points, self.level = max(2, min(min_points, window)), level
        self._windows: dict[str, _Window] = {}

    def observe(self, key: str, steps: Sequence[int], values: Sequence[float]) -> list[Finding]:  # long: the per-point loop is kept in one frame for speed
        state = self._windows.get(key)
        if state is None:
            state = self._windows[key] = _Window(self.window)
        window, found = state.values, []
        size, threshold, min_points = self.window, self.z_threshold, self.min_points
        total, squares, quiet, updates = state.total, state.squares, state.quiet, state.updates
        isfinite, sqrt = math.isfinite, math.sqrt
        for step, x in zip(steps, values):
            if not isfinite(x):
                continue
            n = len(window)
            if n >= min_points and not quiet:
                mean = total / n
                spread = sqrt(max(squares / n - mean * mean, 0.0))
                z = (x - mean) / max(spread, 1e-3 * abs(mean), 1e-12)
                if z > threshold:
                    found.append(Finding(
                        KIND, self.level, f"{key} spiked at step {step}",
                        f"{key} = {format_number(x)}, {z:.1f} standard deviations above the mean of the last {n} "
                        f"points ({format_number(mean)} ± {format_number(spread)})", step, key))
                    quiet = min_points
            elif quiet:
                quiet -= 1
            if n == size:
                old = window[0]
                total -= old
                squares -= old * old
            window.append(x)
            total += x
            squares += x * x
            updates += 1
            if updates >= size:  # recompute now and then: running sums drift
                total, squares, updates = math.fsum(window), math.fsum(v * v for v in window), 0
        state.total, state.squares, state.quiet, state.updates = total, squares, quiet, updates
        return found
