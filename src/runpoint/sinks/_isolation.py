"""Running one sink so that nothing it does can reach the training loop.

Each sink gets its own thread and its own bounded queue. The writer thread only appends
a batch to that queue (and drops it for this sink when the queue is full); every call
into the sink happens on the sink's thread, where:

- an exception is retried with exponential backoff, and a call that still fails counts
  as one failure (its batch is dropped for this sink); ``max_failures`` in a row, or a
  failed ``start``, disable the sink;
- a call that does not return within ``call_timeout`` marks the sink hung: it is
  disabled and its thread abandoned (Python cannot stop a thread; it is a daemon, so it
  cannot keep the process alive either);
- ``run.finish()`` waits at most ``finish_timeout`` for the queue to drain and the sink
  to close, then records a time-out and moves on; it does not wait for a sink already
  given up on;
- a sink given up on gets ``abort(status)`` (if it has one), on a thread of its own, so
  it can end its external run.

Counts are true: ``points_sent`` were confirmed by a call that returned,
``points_dropped`` never reached the sink (queue full, failed call, given up on before
sending), and ``points_in_flight`` were handed to a call that had not returned when
runpoint gave up; if that call returns later they move to sent (or dropped).

Every change of state is reported to the hub, which records it in ``external.json``
(also every ``progress_interval`` while the sink works); disabling warns once. runpoint's own store is never affected: it has every point
whatever happens here.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..logs.run_log import emit
from .base import Sink, SinkBatch, SinkOptions, SinkRun

logger = logging.getLogger("runpoint")

Report = Callable[["IsolatedSink"], None]

_FAILED = object()
_LATE_FAILED = object()  # a call given up on raised when it came back
MAX_BACKOFF_S = 10.0


@dataclass(frozen=True)
class Rewind:
    """A queue entry: the run forgot its points after ``step`` (a resume from a checkpoint)."""

    step: int


class IsolatedSink:
    """One sink behind a bounded queue and a thread of its own.

    States: ``starting`` -> ``running`` -> ``finished``; or ``disabled`` (hung or failing),
    ``timed_out`` (did not finish in time) and ``failed`` (its ``finish`` raised).
    """

    def __init__(self, sink: Sink, run: SinkRun, report: Report) -> None:
        self.sink = sink
        self.name: str = sink.name
        options = getattr(sink, "options", None)
        self.options: SinkOptions = options if isinstance(options, SinkOptions) else SinkOptions()
        self.state = "starting"
        self.external: dict[str, Any] = {}
        self.error: str | None = None
        self.traceback: str | None = None
        self.failures = 0
        self.points_sent = 0
        self.media_sent = 0
        self.points_dropped = 0
        self.media_dropped = 0
        self._run = run
        self._report = report
        self._lock = threading.Lock()
        self._pending: list[SinkBatch | Rewind] = []
        self._pending_points = 0
        self._pending_media = 0
        self._inflight_points = 0
        self._inflight_media = 0
        self._writing = (0, 0)  # (points, media) of the write() call running now
        self._abandoned = (0, 0)  # (points, media) of the write() call running when given up on
        self._aborter: threading.Thread | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()  # set when the sink is given up on: ends backoff waits
        self._done = threading.Event()
        self._finish_status: str | None = None
        self._busy: tuple[str, float] | None = None  # (call, time.monotonic() when it began)
        self._warned_drop = False
        self._last_report = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=f"runpoint-sink-{self.name}", daemon=True)
        self._thread.start()

    # -- called from the writer thread or the finishing thread ------------------------

    @property
    def active(self) -> bool:
        return self.state in {"starting", "running"}

    @property
    def points_pending(self) -> int:
        return self._pending_points

    def submit(self, batch: SinkBatch) -> None:
        """Queue a batch for this sink; never blocks and never raises."""
        self.check_hung()
        points, media = batch.points, len(batch.media)
        with self._lock:
            if not self.active or self._finish_status is not None:
                self.points_dropped += points  # so that sent + dropped is everything the run logged
                self.media_dropped += media
                return
            over_points = points and self._pending_points + points > self.options.max_pending_points
            over_media = media and self._pending_media + media > self.options.max_pending_media
            if over_points or over_media:
                self.points_dropped += points
                self.media_dropped += media
                batch, points, media = batch.without_metrics(), 0, 0
                warn = not self._warned_drop
                self._warned_drop = True
            else:
                warn = False
            self._pending.append(batch)
            self._pending_points += points
            self._pending_media += media
        if warn:
            emit(logger, logging.WARNING, "sink.behind",
                 "runpoint: the %s sink falls behind; points beyond %d (media beyond %d) waiting are dropped "
                 "for it (runpoint's own store keeps every point)",
                 self.name, self.options.max_pending_points, self.options.max_pending_media,
                 run_id=self._run.id, sink=self.name)
        self._wake.set()

    def submit_rewind(self, step: int) -> None:
        """Queue a rewind to ``step``: the sink hears of it after the batches queued before it."""
        with self._lock:
            if not self.active or self._finish_status is not None:
                return
            self._pending.append(Rewind(step))
        self._wake.set()

    def check_hung(self) -> None:
        """Disable the sink if a call into it has run longer than ``call_timeout``."""
        busy = self._busy
        if busy is not None and busy[0] != "finish" and time.monotonic() - busy[1] > self.options.call_timeout:
            self._give_up("disabled", f"{busy[0]}() did not return within {self.options.call_timeout:g} s")

    def request_finish(self, status: str) -> None:
        self._finish_status = status
        self._wake.set()

    def wait(self, deadline: float) -> bool:
        """Wait until the sink has finished (or given up), at most until ``deadline``."""
        while not self._done.is_set() and self.active:
            self.check_hung()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._done.wait(min(remaining, 0.05))
        if self._done.is_set() or not self.active:
            return True
        unsent = self._pending_points + self._inflight_points
        self._give_up(
            "timed_out",
            f"did not finish within {self.options.finish_timeout:g} s"
            + (f"; {unsent} points were not confirmed sent" if unsent else ""),
        )
        return False

    def record(self) -> dict[str, Any]:
        """This sink's entry in ``external.json``."""
        with self._lock:  # the counts of one moment
            sent, dropped, media = self.points_sent, self.points_dropped, self.media_sent
            media_dropped, in_flight = self.media_dropped, self._abandoned[0]
            pending = self._pending_points + self._inflight_points if self.active else 0
        return {
            "status": self.state,
            "external": self.external,
            "points_sent": sent,
            "points_dropped": dropped,
            **({"points_in_flight": in_flight} if in_flight else {}),
            **({"points_pending": pending} if pending else {}),
            "media_sent": media,
            **({"media_dropped": media_dropped} if media_dropped else {}),
            "failures": self.failures,
            "error": self.error,
            **({"traceback": self.traceback} if self.traceback else {}),
        }

    # -- the sink's thread -------------------------------------------------------------

    def _loop(self) -> None:
        try:
            external = self._call("start", self.sink.start, self._run)
            if external is _FAILED:
                return
            self.external = _as_record(external)
            if self._set_state("running", from_states={"starting"}):
                self._report(self)
            while self.active:
                self._wake.wait()
                self._wake.clear()
                for item in self._take():
                    if isinstance(item, Rewind):
                        self._rewind(item.step)
                    elif not self._send(item):
                        return
                    if not self.active:
                        return
                self._report_progress()
                if self._finish_status is not None and not self._pending:
                    finished = self._call("finish", self.sink.finish, self._finish_status)
                    if finished is not _FAILED and self._set_state("finished", from_states={"running"}):
                        self._report(self)
                    return
        except BaseException as exc:  # a bug here must not take anything else down
            self._give_up("disabled", f"internal error: {exc!r}", traceback.format_exc())
        finally:
            self._done.set()

    def _send(self, batch: SinkBatch) -> bool:
        """Write one batch and count it; False when the sink was given up on meanwhile."""
        points, media = batch.points, len(batch.media)
        self._writing = (points, media)
        written = self._call("write", self.sink.write, batch)
        self._writing = (0, 0)
        # counted under the lock: submit() and _give_up() count from other threads
        with self._lock:
            if not self.active:  # given up on while the call ran: its points are in flight
                abandoned_points, abandoned_media = self._abandoned
                self._abandoned = (0, 0)
                if written is _FAILED or written is _LATE_FAILED:
                    self.points_dropped += abandoned_points
                    self.media_dropped += abandoned_media
                else:  # it did return: the sink has them
                    self.points_sent += abandoned_points
                    self.media_sent += abandoned_media
                late = abandoned_points or abandoned_media
            else:
                late = False
                self._inflight_points -= points
                self._inflight_media -= media
                if written is _FAILED:
                    self.points_dropped += points
                    self.media_dropped += media
                else:
                    self.points_sent += points
                    self.media_sent += media
        if late:
            self._report(self)
        return self.active

    def _rewind(self, step: int) -> None:
        rewind = getattr(self.sink, "rewind", None)
        if not callable(rewind):
            return
        external = self._call("rewind", rewind, step)
        if external is not _FAILED and external is not None:
            self.external = _as_record(external)
            self._report(self)

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_report >= self.options.progress_interval:
            self._last_report = now
            self._report(self)

    def _take(self) -> list[SinkBatch | Rewind]:
        """What is queued, batches between rewinds merged into one; all of it counted in flight."""
        with self._lock:  # pending points become in-flight at once, so _give_up never misses them
            pending, self._pending = self._pending, []
            self._inflight_points, self._pending_points = self._pending_points, 0
            self._inflight_media, self._pending_media = self._pending_media, 0
        items: list[SinkBatch | Rewind] = []
        run: list[SinkBatch] = []
        for item in pending:
            if isinstance(item, Rewind):
                if run:
                    items.append(SinkBatch.concat(run))
                    run = []
                items.append(item)
            else:
                run.append(item)
        if run:
            merged = SinkBatch.concat(run)
            if not merged.is_empty():
                items.append(merged)
        return items

    def _call(self, what: str, function: Callable[..., Any], argument: Any) -> Any:
        """Call into the sink with retries; ``_FAILED`` when it gave up (and maybe disabled).

        A call that returns after the sink was given up on gives ``_LATE_FAILED`` if it
        raised and its result otherwise, so that its points are counted truly.
        """
        delay = self.options.backoff
        attempts = 1 + (0 if what == "finish" else self.options.retries)
        for attempt in range(attempts):
            if not self.active:
                return _FAILED
            self._busy = (what, time.monotonic())
            try:
                result = function(argument)
            except Exception as exc:
                error, trace = f"{what}() raised {type(exc).__name__}: {exc}", traceback.format_exc()
                logger.debug("runpoint: the %s sink: %s", self.name, error, exc_info=True)
                if not self.active:
                    return _LATE_FAILED
            else:
                if self.active:
                    self.failures = 0
                return result
            finally:
                self._busy = None
            if attempt + 1 < attempts and self._stop.wait(delay):
                return _FAILED
            delay = min(delay * 2, MAX_BACKOFF_S)
        self.failures += 1
        if what == "finish":
            self._give_up("failed", error, trace)
        elif what == "start" or self.failures >= self.options.max_failures:
            tries = f" ({self.failures} failures in a row)" if what != "start" else ""
            self._give_up("disabled", error + tries, trace)
        else:
            self.error, self.traceback = error, trace
            self._report(self)
        return _FAILED

    def _set_state(self, state: str, from_states: set[str]) -> bool:
        with self._lock:
            if self.state not in from_states:
                return False
            self.state = state
            return True

    def _give_up(self, state: str, error: str, trace: str | None = None) -> None:
        if not self._set_state(state, from_states={"starting", "running"}):
            return
        self.error = error
        if trace:
            self.traceback = trace
        self._stop.set()
        self._wake.set()
        with self._lock:
            self.points_dropped += self._pending_points
            self.media_dropped += self._pending_media
            if self._busy is not None and self._busy[0] == "write":  # handed over, not yet confirmed
                self._abandoned = self._writing
            points, media = self._abandoned
            self.points_dropped += self._inflight_points - points
            self.media_dropped += self._inflight_media - media
            self._pending, self._pending_points, self._pending_media = [], 0, 0
            self._inflight_points = self._inflight_media = 0
        if state == "disabled":
            emit(logger, logging.WARNING, "sink.disabled",
                 "runpoint: the %s sink is disabled: %s. Training goes on and runpoint's own store has "
                 "every point; the failure is recorded in external.json of run %s",
                 self.name, error.rstrip("."), self._run.id, run_id=self._run.id, sink=self.name, error=error)
        else:
            emit(logger, logging.WARNING, "sink.failed", "runpoint: the %s sink of run %s: %s", self.name, self._run.id,
                 error, run_id=self._run.id, sink=self.name, state=state)
        self._report(self)
        if state != "failed":
            self._abort()

    def _abort(self) -> None:
        """Let the sink end its external run, on a thread of its own (its own may hang)."""
        abort = getattr(self.sink, "abort", None)
        if not callable(abort):
            return
        status = self._finish_status or "killed"

        def run() -> None:
            try:
                abort(status)
            except Exception:
                logger.debug("runpoint: abort() of the %s sink failed", self.name, exc_info=True)

        aborter = threading.Thread(target=run, name=f"runpoint-sink-{self.name}-abort", daemon=True)
        aborter.start()
        self._aborter = aborter

    def wait_aborted(self, deadline: float) -> None:
        """Wait, at most until ``deadline``, for ``abort`` to return (when it was called)."""
        aborter = self._aborter
        if aborter is not None:
            aborter.join(max(0.0, deadline - time.monotonic()))


def _as_record(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items()}
    return {"id": str(value)}
