"""The writer never drops points: a slow or failing store makes the caller wait, not lose data."""

from __future__ import annotations

import logging
import threading
import time

import runpoint as rp
from runpoint.errors import StoreError
from runpoint.run.writer import Writer
from runpoint.store import RunRecord, RunStatus, WriteBatch
from runpoint.store.sqlite import SQLiteStore


class FaultyStore:
    """The real SQLite store behind a fault injector: slow writes, or the first N writes failing."""

    def __init__(self, inner: SQLiteStore, delay: float = 0.0, failures: int = 0) -> None:
        self.inner, self.delay, self.failures = inner, delay, failures
        self.location = inner.location
        self.max_pending_seen = 0
        self.writer: Writer | None = None

    def write(self, run_id: str, batch: WriteBatch) -> None:
        if self.writer is not None:
            self.max_pending_seen = max(self.max_pending_seen, self.writer.pending)
        time.sleep(self.delay)
        if self.failures > 0:
            self.failures -= 1
            raise StoreError("disk on fire", self.location)
        self.inner.write(run_id, batch)


def _store(tmp_path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "runpoint.db")
    store.create_run(RunRecord(id="r", project="p", name="n", status=RunStatus.RUNNING, created_at=0.0,
                               heartbeat_at=0.0, dir="p/r"))
    return store


def test_a_full_queue_blocks_the_caller_until_there_is_room(tmp_path) -> None:
    inner = _store(tmp_path)
    store = FaultyStore(inner, delay=0.02)
    writer = Writer(store, "r", flush_interval=0.05, max_pending=100)
    store.writer = writer
    for step in range(5000):
        writer.put(step, float(step), {"x": float(step)}, False)
        assert writer.pending <= 100
    assert writer.close(timeout=60)
    assert inner.read_metric("r", "x").steps.tolist() == list(range(5000))
    inner.close()


def test_store_failures_are_retried_and_nothing_is_lost(tmp_path, caplog) -> None:
    inner = _store(tmp_path)
    store = FaultyStore(inner, failures=3)
    writer = Writer(store, "r", flush_interval=0.05)
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        for step in range(100):
            writer.put(step, 0.0, {"x": 1.0}, False)
        assert writer.flush(timeout=30)
        assert writer.close(timeout=30)
    assert inner.read_metric("r", "x").steps.tolist() == list(range(100))
    messages = [r.getMessage() for r in caplog.records]
    assert any("disk on fire" in m and "retrying" in m for m in messages)
    assert any("works again" in m for m in messages)
    inner.close()


def test_flush_returns_once_earlier_points_are_stored_even_while_logging_continues(tmp_path) -> None:
    inner = _store(tmp_path)
    writer = Writer(inner, "r", flush_interval=5.0)  # only the flush wakes it
    stop = threading.Event()

    def keep_logging() -> None:
        step = 1000
        while not stop.is_set():
            writer.put(step, 0.0, {"y": 1.0}, False)
            step += 1
            time.sleep(0.0005)

    for step in range(10):
        writer.put(step, 0.0, {"x": 1.0}, False)
    other = threading.Thread(target=keep_logging)
    other.start()
    try:
        assert writer.flush(timeout=10)
        assert inner.read_metric("r", "x").steps.tolist() == list(range(10))
    finally:
        stop.set()
        other.join()
        writer.close()
        inner.close()


def test_heartbeats_are_written_while_idle(tmp_path) -> None:
    inner = _store(tmp_path)
    writer = Writer(inner, "r", flush_interval=0.05, heartbeat_interval=0.1)
    before = inner.get_run("r").heartbeat_at
    time.sleep(0.5)
    assert inner.get_run("r").heartbeat_at > before
    writer.close()
    inner.close()


def test_a_run_deleted_while_logging_fails_its_flushes_instead_of_hanging(root, store_at) -> None:
    run = rp.init(project="p", id="gone", root=root, console=False, system_metrics=False)
    run.log({"loss": 1.0}, step=0)
    run.flush()
    store_at().delete_run("gone")  # as `runpoint rm --force` would
    run.log({"loss": 0.5}, step=1)
    outcome: list[BaseException | None] = []
    flusher = threading.Thread(target=lambda: outcome.append(_raised(run.flush)), daemon=True)
    flusher.start()
    flusher.join(timeout=20)
    assert not flusher.is_alive(), "flush hung on a run that no longer exists"
    assert isinstance(outcome[0], rp.StoreError) and "deleted" in str(outcome[0])
    run.summary["late"] = 1  # queued; must not hang finish either
    finisher = threading.Thread(target=lambda: _raised(run.finish), daemon=True)
    finisher.start()
    finisher.join(timeout=20)
    assert not finisher.is_alive(), "finish hung on a run that no longer exists"


def _raised(call) -> BaseException | None:  # noqa: ANN001
    try:
        call()
    except BaseException as exc:  # noqa: BLE001 - the test inspects it
        return exc
    return None


def test_a_write_stuck_on_another_process_lock_does_not_hold_the_caller_for_long(tmp_path) -> None:
    """Pacing the caller (the crash bound) must not turn a lock held elsewhere into a stalled training loop."""
    import sqlite3

    inner = _store(tmp_path)
    writer = Writer(inner, "r", flush_interval=0.2, max_pending=10_000_000)  # only the pacing can hold it
    other = sqlite3.connect(inner.location, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process's long write: ours waits in SQLite's busy handler
    released = threading.Timer(3.0, lambda: other.execute("COMMIT"))
    released.start()
    worst, step, until = 0.0, 0, time.monotonic() + 3.5
    while time.monotonic() < until:
        started = time.monotonic()
        writer.put(step, time.time(), {"x": float(step)}, False)
        worst = max(worst, time.monotonic() - started)
        step += 1
    released.join()
    assert writer.close(timeout=60)
    # about one interval's wait (0.2 s; generous for a loaded machine), not the 3 s the lock was held
    assert worst < 1.5, worst
    assert inner.read_metric("r", "x").steps.tolist() == list(range(step))
    other.close()
    inner.close()
