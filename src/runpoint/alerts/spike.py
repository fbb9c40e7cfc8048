"""Loss spikes: a point far above the moving window of the points before it.

For each new point ``x`` of a watched key, with the mean ``m`` and standard deviation ``s``
of the ``window`` finite points before it: a spike is
``(x - m) / max(s, 1e-3 * |m|, 1e-12) > z_threshold``. The floor keeps a perfectly flat
series from calling a rounding difference a spike. After a spike the key is quiet for
``min_points`` points, so one burst is one alert. Only rises count: a loss falling fast is
good news. Non-finite points are left to the NaN detector.

The writer thread runs this on every batch, so its cost matters: when numpy is already
loaded (any PyTorch script), a batch's z-scores come from cumulative sums in C and only the
few candidates are looked at in Python; otherwise a running-sum loop does it point by point.

Example::

    detector = SpikeDetector(window=50, z_threshold=6)
    detector.observe("train/loss", range(100), [1.0] * 99 + [50.0])   # one Finding at step 99
"""

from __future__ import annotations

import math
import sys
from collections import deque
from typing import Any, Sequence

from .findings import Finding, Level, format_number

KIND = "spike"
_NUMPY_FROM = 64  # points in a batch from which the numpy path pays off


class _Window:
    __slots__ = ("values", "count", "last_spike")

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self.count = 0  # finite points seen
        self.last_spike = -(2**62)  # the finite-point index of the last reported spike


class SpikeDetector:
    """Per key, a z-score of each point against the ``window`` points before it."""

    def __init__(self, *, window: int = 100, z_threshold: float = 6.0, min_points: int = 20,
                 level: Level = "warning", use_numpy: bool = True) -> None:
        self.window, self.z_threshold = window, z_threshold
        self.min_points, self.level = max(2, min(min_points, window)), level
        self.use_numpy = use_numpy
        self._windows: dict[str, _Window] = {}

    def observe(self, key: str, steps: Sequence[int], values: Sequence[float]) -> list[Finding]:
        state = self._windows.get(key)
        if state is None:
            state = self._windows[key] = _Window(self.window)
        numpy = sys.modules.get("numpy") if self.use_numpy and len(values) >= _NUMPY_FROM else None
        if numpy is not None:
            candidates = self._candidates_numpy(numpy, state, steps, values)
        else:
            candidates = self._candidates_python(state, steps, values)
        found: list[Finding] = []
        for index, step, x, z, mean, spread, n in candidates:
            if index - state.last_spike <= self.min_points:
                continue  # the same burst
            state.last_spike = index
            found.append(Finding(
                KIND, self.level, f"{key} spiked at step {step}",
                f"{key} = {format_number(x)}, {z:.1f} standard deviations above the mean of the last {n} "
                f"points ({format_number(mean)} ± {format_number(spread)})", step, key))
        return found

    def _candidates_python(self, state: _Window, steps: Sequence[int], values: Sequence[float]) -> list[tuple]:  # long: one frame for speed
        window, size, threshold, min_points = state.values, self.window, self.z_threshold, self.min_points
        total, squares = math.fsum(window), math.fsum(v * v for v in window)
        index, out = state.count, []
        isfinite, sqrt = math.isfinite, math.sqrt
        for step, x in zip(steps, values):
            if not isfinite(x):
                continue
            n = len(window)
            if n >= min_points:
                mean = total / n
                spread = sqrt(max(squares / n - mean * mean, 0.0))
                z = (x - mean) / max(spread, 1e-3 * abs(mean), 1e-12)
                if z > threshold:
                    out.append((index, step, x, z, mean, spread, n))
            if n == size:
                old = window[0]
                total -= old
                squares -= old * old
            window.append(x)
            total += x
            squares += x * x
            index += 1
            if not index % size:  # recompute now and then: running sums drift
                total, squares = math.fsum(window), math.fsum(v * v for v in window)
        state.count = index
        return out

    def _candidates_numpy(self, np: Any, state: _Window, steps: Sequence[int], values: Sequence[float]) -> list[tuple]:
        new = np.frombuffer(values, dtype=np.float64) if isinstance(values, memoryview) else np.asarray(values, dtype=np.float64)
        steps_of = np.asarray(steps)
        finite = np.isfinite(new)
        if not finite.all():
            new, steps_of = new[finite], steps_of[finite]
        before = np.fromiter(state.values, dtype=np.float64, count=len(state.values))
        joined = np.concatenate((before, new))
        out: list[tuple] = []
        if len(new):
            shift = joined[0]  # sums of shifted values: no cancellation on large, nearly flat series
            shifted = joined - shift
            sums = np.concatenate(([0.0], np.cumsum(shifted)))
            squares = np.concatenate(([0.0], np.cumsum(shifted * shifted)))
            at = np.arange(len(before), len(joined))
            n = np.minimum(at, self.window)
            counts = np.maximum(n, 1)
            mean_shifted = (sums[at] - sums[at - n]) / counts
            spread = np.sqrt(np.maximum((squares[at] - squares[at - n]) / counts - mean_shifted ** 2, 0.0))
            mean = mean_shifted + shift
            z = (new - mean) / np.maximum(np.maximum(spread, 1e-3 * np.abs(mean)), 1e-12)
            for i in np.nonzero((z > self.z_threshold) & (n >= self.min_points))[0].tolist():
                out.append((state.count + i, int(steps_of[i]), float(new[i]), float(z[i]), float(mean[i]),
                            float(spread[i]), int(n[i])))
        state.values.extend(joined[-self.window:].tolist())
        state.count += len(new)
        return out
