"""The background writer: moves logged points from the training loop into the store.

``run.log`` appends one tuple to a deque and returns; it never touches the disk. A daemon
thread drains the deque, packs the points column-wise per key, and hands one
:class:`WriteBatch` to the store, which commits it as one transaction.

The crash bound: a SIGKILL loses the points logged since the last committed write began
to collect them. Writes start ``flush_interval`` apart, measured start to start and
shortened by the previous write's duration, so that a commit lands about every
``flush_interval``; when a write takes longer than that the thread drains again at once.
A caller that out-logs the writer is paced: ``put`` (every 1024 entries, O(1)) waits for
the next collect once the caller is further ahead than the next write can commit in time,
as estimated from the last write's cost per second of logging. A kill so loses at most
``flush_interval`` plus one write's duration, plus however late the OS runs the thread. A
write stuck on a lock or the disk for longer than an interval releases the caller.

Backpressure: when ``max_pending`` entries wait, the caller blocks until the thread has
drained them. Nothing is dropped. If the store fails (disk full, a lock held too long),
the batch is kept and retried with backoff, and a warning says so; while it retries only
``max_pending`` holds the caller back, and if it keeps failing, the caller ends up waiting
rather than losing data.

Steps: each key's steps should increase. The writer (not the caller) checks each batch and
warns once per key when a key is logged at a step at or below its previous one; both points
are kept. :meth:`Writer.rewind` drops stored points after a step, in queue order.

Helpers: the queue's operations and the column packing are in :mod:`._writer_ops`, the
caller's waits in :mod:`._writer_pacing`, the step check in :mod:`._writer_steps`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from .._util.forksafe import call_after_fork
from ..errors import RunNotFoundError, StoreError
from ..logs.run_log import emit
from ..store.base import AlertRecord, Store, WriteBatch
from ._writer_ops import (
    AlertOp,
    Marker,
    ParamsOp,
    RewindOp,
    SummaryOp,
    inspect_batch,
    redact_media,
    redacted_alert,
    resolve_deferred,
    to_columns,
)
from ._writer_pacing import CallerPacing
from ._writer_steps import StepOrder

logger = logging.getLogger("runpoint")

BatchListener = Callable[[str, WriteBatch], None]


class Writer(CallerPacing):
    """Queue plus flush thread for one run.

    Example::

        writer = Writer(store, run_id)
        writer.put(step=0, wall=time.time(), values={"loss": 0.5}, deferred=False)
        writer.flush()     # blocks until the point is committed
        writer.close()
    """

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        flush_interval: float = 0.5,
        heartbeat_interval: float = 5.0,
        max_pending: int = 100_000,
        listeners: list[BatchListener] | None = None,
        last_steps: dict[str, int] | None = None,
        first_sequence: int = 1,
        rank: int | None = None,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._flush_interval = flush_interval
        self._heartbeat_interval = heartbeat_interval
        self._max_pending = max_pending
        self._wake_at = max(1, max_pending // 4)
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._room = threading.Condition()
        self._stopping = False
        self._run_gone: StoreError | None = None  # set when the run was deleted from the store
        self._last_heartbeat = 0.0
        self._collected_at = time.time()  # when the thread last took entries off the queue
        self._batch_span = 0.0  # seconds between the first and last call of the batch being written
        # How far behind (seconds of logging) the caller may get before ``put`` waits for the
        # thread: at most an interval, less when writes are slow (see ``_pace_caller``).
        self._max_lag = flush_interval
        self._retrying = False  # the store is failing: only max_pending holds the caller back
        self._stuck = False  # a write outlasted the caller's wait: only max_pending holds it back until the next collect
        self._step_order = StepOrder(run_id, last_steps)  # per key, its last step stored or queued
        # put_internal adds to the step check's set itself: no call on the logging path
        self._unchecked_keys: set[str] = self._step_order.unchecked
        # every batch gets the next number, its idempotency key: a retried batch is stored once
        self._next_sequence = first_sequence
        self._rank = rank  # a multi-rank job's rank: its batches heartbeat its row (WriteBatch.rank)
        self._failure: BaseException | None = None
        self._fatal: BaseException | None = None
        self.listeners: list[BatchListener] = list(listeners or [])
        self.redact_text: Callable[[str], str] | None = None  # rp.Text and captions (runpoint.logs.redact)
        self.on_tick: list[Callable[[], None]] = []  # called after every flush cycle
        # called with every collected batch before it is written (the alert detectors): may add to it
        self.inspectors: list[Callable[[WriteBatch], None]] = []
        self.points_written = 0
        # batches given up on at close (the store kept failing for 30 s): the run spills them
        self.unstored: list[WriteBatch] = []
        self.points_unstored = 0
        self._gave_up: BaseException | None = None
        self.give_up_after_s = 30.0  # how long close() retries a failing store before spilling
        self.longest_write_s = 0.0  # the longest time from taking entries off the queue to their commit
        self._thread = threading.Thread(target=self._loop, name=f"runpoint-writer-{run_id}", daemon=True)
        self._thread.start()
        call_after_fork(self._disable_in_forked_child)

    # -- caller side -----------------------------------------------------------------

    def put(self, step: int, wall: float, values: dict[str, Any], deferred: bool) -> None:
        """Queue one logged dict. Blocks while ``max_pending`` entries wait, or (checked every
        1024 entries) while the caller is further ahead than the thread can commit in time."""
        queue = self._queue
        if len(queue) >= self._max_pending:
            self._wait_for_room()
        queue.append((step, wall, values, deferred))
        pending = len(queue)
        if pending >= self._wake_at and not self._wake.is_set():  # set() takes a lock: ~6 µs
            self._wake.set()
        if not pending & 1023 and wall - self._collected_at > self._max_lag and not (self._retrying or self._stuck):
            self._wait_for_collect()

    def put_internal(self, step: int, wall: float, values: dict[str, Any]) -> None:
        """Queue values runpoint made itself at a step it chose; their steps are not checked."""
        self._unchecked_keys.update(values)
        self.put(step, wall, values, True)

    def set_summary(self, key: str, value: Any) -> None:
        self._queue.append(SummaryOp(key, value))

    def delete_summary(self, key: str) -> None:
        self._queue.append(SummaryOp(key, delete=True))

    def add_params(self, params: dict[str, Any], tags: tuple[str, ...] = ()) -> None:
        self._queue.append(ParamsOp(params, tags))

    def add_alert(self, record: AlertRecord) -> None:
        self._queue.append(AlertOp(redacted_alert(record, self.redact_text)))

    @property
    def pending(self) -> int:
        return len(self._queue)

    def rewind(self, after_step: int, *, wait: bool = True) -> int:
        """Drop the stored points with a step above ``after_step`` once what is queued is stored.

        With ``wait`` it blocks until done and returns how many points went (a store error
        raises :class:`~runpoint.errors.StoreError`); without, it returns 0 at once and the
        writer logs what it dropped.
        """
        op = RewindOp(after_step, announce=not wait)
        self._queue.append(op)
        self._wake.set()
        if not wait:
            return 0
        if not self._thread.is_alive():
            self._drain_once()
        op.done.wait()
        if op.error is not None:
            raise StoreError(f"could not drop points after step {after_step}: {op.error}") from op.error
        return op.dropped

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything queued before this call is in the store. False on timeout."""
        if not self._thread.is_alive():
            self._drain_once()  # the thread is gone (interpreter shutdown, a bug): write inline
            return True
        marker = Marker()
        self._queue.append(marker)
        self._wake.set()
        if not marker.done.wait(timeout):
            return False
        if marker.error is not None:
            raise StoreError(f"could not write to the store: {marker.error}") from marker.error
        return True

    def close(self, timeout: float | None = 60.0) -> bool:
        """Flush everything and stop the thread. False if it did not finish within ``timeout``."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        finished = not self._thread.is_alive()
        if finished and self._queue:
            self._drain_once()
        return finished and not self._queue

    # -- writer thread ---------------------------------------------------------------

    def _loop(self) -> None:
        interval = self._flush_interval
        try:
            while True:
                started = time.monotonic()
                stopping = self._stopping
                self._drain_once()
                if stopping and not self._queue:
                    return
                # the next write starts an interval after this one started, less this one's
                # duration so that the next commit lands on time; at once when behind
                delay = interval - 2 * (time.monotonic() - started)
                if delay > 0:
                    self._wake.wait(delay)
                self._wake.clear()
        except BaseException as exc:  # a bug in runpoint: make it visible, never silent
            self._fatal = exc
            logger.exception("runpoint's writer thread stopped; logged points are no longer stored")
            raise

    def _drain_once(self) -> None:
        try:
            self._drain_queue()
        finally:
            for tick in self.on_tick:
                try:
                    tick()
                except Exception:
                    logger.exception("runpoint: a flush callback failed")

    def _drain_queue(self) -> None:
        queue = self._queue
        while True:
            batch, markers, count = self._collect(queue)
            with self._room:  # entries left the queue: callers waiting for room or for a collect go on
                self._room.notify_all()
            error: BaseException | None = None
            now = time.time()
            if not batch.is_empty() or now - self._last_heartbeat >= self._heartbeat_interval:
                batch.heartbeat_at = now
                error = self._write(batch)
                if error is None:
                    self.points_written += count
                    self._pace_caller(time.time() - self._collected_at)
                elif error is self._gave_up:
                    self.unstored.append(batch)
                    self.points_unstored += count
            for marker in markers:
                if type(marker) is RewindOp and error is None:
                    error = self._rewind(marker)
                marker.error = error
                marker.done.set()
            if not queue:
                return

    def _collect(self, queue: deque[Any], limit: int = 250_000) -> tuple[WriteBatch, list[Marker], int]:
        """Pop up to ``limit`` entries; pack their points column-wise per key."""
        self._collected_at = time.time()
        self._batch_span = 0.0
        self._stuck = False
        batch = WriteBatch(rank=self._rank)
        media = batch.media
        markers: list[Marker] = []
        entries: list[tuple[Any, ...]] = []  # (step, wall, values, deferred): queued tuples, reused
        append = entries.append
        popleft = queue.popleft
        for _ in range(min(len(queue), limit)):
            entry = popleft()
            if type(entry) is tuple:
                if entry[3]:
                    step, wall, values, _ = entry
                    entry = (step, wall, resolve_deferred(values, step, wall, media), False)
                append(entry)
            elif type(entry) is Marker or type(entry) is RewindOp:
                markers.append(entry)
                break  # write what came before the marker now, so the flush returns promptly
            else:
                entry.apply(batch)
        if media and self.redact_text is not None:
            redact_media(media, self.redact_text)
        if len(entries) > 1:
            self._batch_span = entries[-1][1] - entries[0][1]
        batch.metrics, count = to_columns(entries)
        if batch.metrics:
            self._step_order.check(batch.metrics)
        inspect_batch(self.inspectors, batch)
        return batch, markers, count

    def _rewind(self, op: RewindOp) -> BaseException | None:
        try:
            op.dropped = self._store.truncate_metrics(self._run_id, op.after_step)
            self._step_order.last = {key: s.last_step for key, s in self._store.metric_stats(self._run_id).items()}
        except Exception as exc:
            if op.announce:
                logger.error("runpoint: run %s: could not drop the points after step %d: %s",
                             self._run_id, op.after_step, exc)
            return exc
        if op.announce and op.dropped:
            logger.warning(
                "runpoint: run %s resumed at step %d, at or below steps it had stored: dropped the %d points "
                "logged at step %d and after, as a checkpoint restore does",
                self._run_id, op.after_step + 1, op.dropped, op.after_step + 1,
            )
        return None

    def _deleted(self) -> bool:
        try:
            self._store.get_run(self._run_id)
        except RunNotFoundError:
            return True
        except Exception:  # the store is unreachable: that may pass, keep retrying
            return False
        return False

    def _write(self, batch: WriteBatch) -> BaseException | None:
        """Write with retries; returns the last error if it gave up while stopping."""
        if self._run_gone is not None:
            return self._run_gone
        if self._gave_up is not None and self._stopping:  # one 30 s wait at close, not one per batch
            return self._gave_up
        if batch.sequence is None:
            batch.sequence, self._next_sequence = self._next_sequence, self._next_sequence + 1
        delay = 0.05
        first_failure: float | None = None
        while True:
            try:
                self._store.write(self._run_id, batch)
            except Exception as exc:
                now = time.time()
                if first_failure is None:
                    if self._deleted():  # no retry can succeed: fail the flushes instead of hanging them
                        location = getattr(self._store, "location", "the store")
                        self._run_gone = StoreError(f"run {self._run_id} was deleted from {location} while it was running")
                        logger.error("runpoint: %s; what it logs from now on is not stored", self._run_gone)
                        return self._run_gone
                    first_failure = now
                    self._retrying = True
                    with self._room:  # a caller waiting for the next collect: let it go on
                        self._room.notify_all()
                    emit(logger, logging.WARNING, "store.retry",
                         "runpoint: writing to %s failed (%s); keeping the points and retrying",
                         getattr(self._store, "location", "the store"), exc, run_id=self._run_id, error=str(exc))
                if self._stopping and now - first_failure > self.give_up_after_s:
                    logger.error(
                        "runpoint: gave up writing %d points of run %s after %g s: %s",
                        sum(len(s) for s in batch.metrics.values()), self._run_id, self.give_up_after_s, exc,
                    )
                    self._gave_up = exc
                    return exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            if first_failure is not None:
                self._retrying = False
                emit(logger, logging.WARNING, "store.recovered", "runpoint: writing to the store works again; "
                     "nothing was lost", run_id=self._run_id, seconds=time.time() - first_failure)
            self._last_heartbeat = batch.heartbeat_at or self._last_heartbeat
            for listener in self.listeners:
                try:
                    listener(self._run_id, batch)
                except Exception:  # listeners are sinks: they must never stop the writer
                    logger.exception("runpoint: a batch listener failed")
            return None

    # -- fork ------------------------------------------------------------------------

    def _disable_in_forked_child(self) -> None:
        # The thread did not survive fork(); points logged in the child would pile up.
        self._queue = deque()
        warned: list[bool] = []

        def ignored_in_child(*_: Any, **__: Any) -> None:
            if not warned:
                warned.append(True)
                logger.warning("runpoint: logging to a run from a forked child process is ignored; log from the parent")

        def nothing_to_flush(timeout: float | None = None) -> bool:
            return True

        def nothing_to_rewind(after_step: int, *, wait: bool = True) -> int:
            ignored_in_child()
            return 0

        # Everything that would queue a write, and flush (which would drain the queue inline
        # through a connection of the child's own), does nothing in the child.
        self.put = self.set_summary = self.delete_summary = self.add_params = ignored_in_child  # type: ignore[method-assign]
        self.add_alert = ignored_in_child  # type: ignore[method-assign]
        self.put_internal = ignored_in_child  # type: ignore[method-assign]
        self.flush = nothing_to_flush  # type: ignore[method-assign]
        self.rewind = nothing_to_rewind  # type: ignore[method-assign]
