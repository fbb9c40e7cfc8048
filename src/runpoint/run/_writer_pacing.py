"""How the writer holds back a caller that logs faster than the store takes points.

Two limits, both checked in ``Writer.put`` (see :mod:`runpoint.run.writer`): a count
(``max_pending`` queued entries: wait for room) and a lag (the caller is further ahead of
the last collect than the next write can commit within an interval: wait for the next
collect). :class:`CallerPacing` holds the waits and the estimate of the allowed lag; it is a
base of :class:`~runpoint.run.writer.Writer`, so that ``put`` reads the state as its own
attributes, with no extra lookup on the training loop's path.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from ..errors import RunpointError


class CallerPacing:
    """The caller-side waits of the writer; the state is set up by ``Writer.__init__``."""

    _queue: deque[Any]
    _wake: threading.Event
    _room: threading.Condition
    _thread: threading.Thread
    _fatal: BaseException | None
    _flush_interval: float
    _max_pending: int
    _collected_at: float  # when the thread last took entries off the queue
    _batch_span: float  # seconds between the first and last call of the batch being written
    _max_lag: float  # how far behind (seconds of logging) the caller may get before ``put`` waits
    _retrying: bool  # the store is failing: only max_pending holds the caller back
    _stuck: bool  # a write outlasted the caller's wait: only max_pending holds it back until the next collect
    longest_write_s: float  # the longest time from taking entries off the queue to their commit

    def _wait_for_collect(self) -> None:
        """Wait until the thread next takes entries off the queue: the caller got too far ahead.

        A write that takes longer than an interval is waiting on the disk or on another
        process's lock, not on the CPU this caller competes for: holding the caller longer
        would not help the bound, so it goes on (the count limit still applies).
        """
        seen = self._collected_at
        deadline = time.monotonic() + self._flush_interval
        self._wake.set()
        with self._room:
            while self._collected_at == seen and not self._retrying and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    self._stuck = True
                    return
                self._room.wait(left)

    def _wait_for_room(self) -> None:
        self._wake.set()
        with self._room:
            while len(self._queue) >= self._max_pending:
                if not self._thread.is_alive():
                    raise RunpointError(f"runpoint's writer thread died: {self._fatal!r}") from self._fatal
                self._room.wait(0.5)

    def _pace_caller(self, took: float) -> None:
        """Set how far the caller may get ahead so that the next commit lands within an interval.

        When the thread drains without pause, a kill loses this write's duration plus the
        next one's; the next one stores what the caller logs while it may run ahead, at the
        cost per second of logging this write measured (``took`` / its batch's span).
        """
        self.longest_write_s = max(self.longest_write_s, took)
        interval, span = self._flush_interval, self._batch_span
        if span <= 0.0 or took <= 0.0:
            return
        self._max_lag = min(interval, max(0.1 * interval, (interval - took) * span / took))
