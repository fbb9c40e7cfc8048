"""Applying a :class:`~runpoint.store.base.WriteBatch` inside the caller's transaction (PostgreSQL).

The same steps as the SQLite store's ``_write``: claim the batch's sequence (its
idempotency key) first, so a retry does no other work, then tags, params, summary,
metric chunks, media rows, alerts and the heartbeat. Before anything, the run's row is locked
(``FOR NO KEY UPDATE``): batches of one run apply one after another, whichever process
or server worker sends them (SQLite gets that from its one writer lock), while batches
of different runs go in parallel. A run that does not exist is refused there, before
any row is written, with the error the SQLite store gives (a foreign key failure).
"""

from __future__ import annotations

from typing import Sequence

from ...errors import StoreError
from ..base import MediaRecord, WriteBatch
from ..encoding import to_json
from . import _metrics, _ranks, alerts
from ._connections import Connection
from ._runs import write_params, write_tags
from .media import insert_rows


def lock_run(conn: Connection, run_id: str, location: str) -> None:
    """Lock the run's row for this transaction; StoreError if there is no such run."""
    if conn.execute("SELECT 1 FROM runs WHERE id = %s FOR NO KEY UPDATE", (run_id,)).fetchone() is None:
        raise StoreError(f"{location}: FOREIGN KEY constraint failed: no run {run_id!r}", location)


def claim(conn: Connection, run_id: str, sequence: int) -> bool:
    """Record ``(run_id, sequence)`` in the caller's transaction; False if it was there already."""
    return conn.execute(
        "INSERT INTO applied_batches (run_id, sequence) VALUES (%s, %s) ON CONFLICT DO NOTHING", (run_id, sequence)
    ).rowcount > 0


def is_applied(conn: Connection, run_id: str, sequence: int) -> bool:
    return conn.execute(
        "SELECT 1 FROM applied_batches WHERE run_id = %s AND sequence = %s", (run_id, sequence)
    ).fetchone() is not None


def _write_summary(conn: Connection, run_id: str, summary: dict[str, object], deleted: Sequence[str]) -> None:
    if summary:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO summary (run_id, key, value) VALUES (%s, %s, %s)"
                " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                [(run_id, key, to_json(value)) for key, value in summary.items()],
            )
    if deleted:
        conn.execute("DELETE FROM summary WHERE run_id = %s AND key = ANY(%s)", (run_id, list(deleted)))


def _write_heartbeat(conn: Connection, run_id: str, heartbeat_at: float) -> None:
    # A heartbeat proves the process alive: undo a reader's "crashed" verdict.
    conn.execute(
        "UPDATE runs SET heartbeat_at = %s,"
        " status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END,"
        " ended_at = CASE WHEN status = 'crashed' THEN NULL ELSE ended_at END"
        " WHERE id = %s",
        (heartbeat_at, run_id),
    )


def apply_batch(conn: Connection, run_id: str, batch: WriteBatch, location: str) -> bool:
    """Every statement of ``batch``, in the caller's transaction; False if its sequence was applied before."""
    lock_run(conn, run_id, location)
    if batch.sequence is not None and not claim(conn, run_id, batch.sequence):
        return False
    write_tags(conn, run_id, batch.tags)
    write_params(conn, run_id, batch.params)
    _write_summary(conn, run_id, batch.summary, batch.summary_deleted)
    _metrics.append(conn, run_id, batch.metrics)
    media: list[MediaRecord] = batch.media
    if media:
        insert_rows(conn, run_id, media, location)
    if batch.alerts:
        alerts.insert_rows(conn, run_id, batch.alerts)
    if batch.heartbeat_at is not None and batch.rank is not None:
        _ranks.heartbeat(conn, run_id, batch.rank, batch.heartbeat_at)
    elif batch.heartbeat_at is not None:
        _write_heartbeat(conn, run_id, batch.heartbeat_at)
    return True
