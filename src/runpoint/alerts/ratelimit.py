"""At most N alerts of one kind per minute; the rest are counted and summed up in one alert.

Example::

    limiter = RateLimiter(per_minute=10)
    if limiter.admit("spike", now): ...            # store and send it
    for finding in limiter.summaries(now): ...    # "k more spike alerts suppressed", once room is back
"""

from __future__ import annotations

from collections import deque

from .findings import Finding

WINDOW_S = 60.0


class RateLimiter:
    """A sliding minute per alert kind."""

    def __init__(self, per_minute: int = 10) -> None:
        self.per_minute = per_minute
        self._sent: dict[str, deque[float]] = {}
        self.suppressed: dict[str, int] = {}
        self.total_suppressed = 0

    def _room(self, kind: str, now: float) -> bool:
        sent = self._sent.setdefault(kind, deque())
        while sent and now - sent[0] >= WINDOW_S:
            sent.popleft()
        return len(sent) < self.per_minute

    def admit(self, kind: str, now: float) -> bool:
        """True (and counted) if an alert of ``kind`` may go out now; else it is suppressed."""
        if self._room(kind, now) and not self.suppressed.get(kind):
            self._sent[kind].append(now)
            return True
        self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
        self.total_suppressed += 1
        return False

    def summaries(self, now: float) -> list[Finding]:
        """One "k more alerts suppressed" per kind with suppressed alerts and room again."""
        out: list[Finding] = []
        for kind, count in list(self.suppressed.items()):
            if count and self._room(kind, now):
                self._sent[kind].append(now)
                del self.suppressed[kind]
                plural = "s" if count > 1 else ""
                out.append(Finding(kind, "info", f"{count} more {kind} alert{plural} suppressed",
                                   f"over {self.per_minute} {kind} alerts in a minute: {count} not stored or sent"))
        return out
