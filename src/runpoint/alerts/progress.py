"""Progress detectors: a stalled run (nothing logged for a while) and a drop in steps per second.

Both take the time from the caller, so tests drive them with a clock of their own.

Example::

    stall = StallDetector(after_s=600, now=started)
    stall.check(started + 601)        # a Finding: nothing logged for 601 s
    throughput = ThroughputDetector(window_s=30)
    throughput.observe(step, time)    # once per batch: the last step logged and its time
"""

from __future__ import annotations

import statistics
from collections import deque

from .findings import Finding, Level, format_number


class StallDetector:
    """Alerts once when nothing was logged for ``after_s`` seconds; again only after logging resumed."""

    kind = "stall"

    def __init__(self, *, after_s: float = 600.0, now: float, level: Level = "warning") -> None:
        self.after_s, self.level = after_s, level
        self.last_activity = now
        self._alerted = False

    def activity(self, now: float) -> None:
        self.last_activity = now
        self._alerted = False

    def check(self, now: float, step: int | None = None) -> Finding | None:
        idle = now - self.last_activity
        if self._alerted or idle < self.after_s:
            return None
        self._alerted = True
        return Finding(self.kind, self.level, f"no metrics logged for {idle:.0f} s",
                       f"the process is alive but has logged nothing since {idle:.0f} s "
                       f"(stall threshold {self.after_s:g} s)", step)


class ThroughputDetector:
    """Steps per second over windows of ``window_s``; alerts when ``patience`` windows in a row
    fall below ``fraction`` of the running median of the last ``history`` normal windows."""

    kind = "throughput"

    def __init__(self, *, fraction: float = 0.3, window_s: float = 30.0, history: int = 20, min_samples: int = 5,
                 patience: int = 3, level: Level = "warning") -> None:
        self.fraction, self.window_s, self.min_samples = fraction, window_s, min_samples
        self.patience, self.level = patience, level
        self.rates: deque[float] = deque(maxlen=history)
        self._start: tuple[int, float] | None = None
        self._slow = 0
        self._alerted = False

    def observe(self, step: int, time: float) -> Finding | None:
        if self._start is None or step < self._start[0] or time < self._start[1]:
            self._start = (step, time)  # the first point, or a rewind: start over
            return None
        first_step, first_time = self._start
        if time - first_time < self.window_s:
            return None
        self._start = (step, time)
        rate = (step - first_step) / (time - first_time)
        if len(self.rates) < self.min_samples:
            self.rates.append(rate)
            return None
        median = statistics.median(self.rates)
        if rate >= self.fraction * median:
            self.rates.append(rate)  # only normal windows make the baseline
            self._slow, self._alerted = 0, False
            return None
        self._slow += 1
        if self._slow < self.patience or self._alerted:
            return None
        self._alerted = True
        return Finding(self.kind, self.level, f"throughput dropped to {format_number(rate)} steps/s",
                       f"{format_number(rate)} steps/s for {self._slow} windows of {self.window_s:g} s, below "
                       f"{self.fraction:g} x the running median {format_number(median)} steps/s", step)
