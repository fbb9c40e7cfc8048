"""Applying a :class:`~runpoint.store.base.WriteBatch` inside the caller's transaction.

:meth:`SQLiteStore.write <runpoint.store.sqlite.store.SQLiteStore.write>` opens the
transaction (and writes media files before it); :func:`apply_batch` does every statement
of the batch in it, so the batch is visible whole or not at all. Tags and params are
written the same way when a run is created.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping, Sequence

from ..base import WriteBatch
from . import _applied, _ranks
from . import alerts as sqlite_alerts
from . import media as sqlite_media
from ._encoding import as_number, to_json
from ._metrics import ChunkedMetrics


def write_tags(conn: sqlite3.Connection, run_id: str, tags: Sequence[str]) -> None:
    conn.executemany(
        "INSERT OR IGNORE INTO tags (run_id, tag) VALUES (?, ?)", [(run_id, tag) for tag in tags]
    )


def write_params(conn: sqlite3.Connection, run_id: str, params: Mapping[str, Any]) -> None:
    conn.executemany(
        "INSERT INTO params (run_id, key, value, num) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, num = excluded.num",
        [(run_id, key, to_json(value), as_number(value)) for key, value in params.items()],
    )


def _write_summary(conn: sqlite3.Connection, run_id: str, batch: WriteBatch) -> None:
    if batch.summary:
        conn.executemany(
            "INSERT INTO summary (run_id, key, value) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            [(run_id, key, to_json(value)) for key, value in batch.summary.items()],
        )
    if batch.summary_deleted:
        conn.executemany(
            "DELETE FROM summary WHERE run_id = ? AND key = ?",
            [(run_id, key) for key in batch.summary_deleted],
        )


def _write_heartbeat(conn: sqlite3.Connection, run_id: str, heartbeat_at: float) -> None:
    # A heartbeat proves the process alive: undo a reader's "crashed" verdict.
    conn.execute(
        "UPDATE runs SET heartbeat_at = ?,"
        " status = CASE WHEN status = 'crashed' THEN 'running' ELSE status END,"
        " ended_at = CASE WHEN status = 'crashed' THEN NULL ELSE ended_at END"
        " WHERE id = ?",
        (heartbeat_at, run_id),
    )


def apply_batch(conn: sqlite3.Connection, metrics: ChunkedMetrics, run_id: str, batch: WriteBatch) -> bool:
    """Every statement of ``batch``, in the caller's transaction; False if its sequence was applied before.

    The sequence is claimed first, so a retry does no other work; a batch that fails
    later rolls back with its claim, and its retry applies it.
    """
    if batch.sequence is not None and not _applied.claim(conn, run_id, batch.sequence):
        return False
    if batch.tags:
        write_tags(conn, run_id, batch.tags)
    if batch.params:
        write_params(conn, run_id, batch.params)
    _write_summary(conn, run_id, batch)
    for key, series in batch.metrics.items():
        if len(series):
            metrics.append(conn, run_id, key, series)
    if batch.media:
        sqlite_media.insert_rows(conn, run_id, batch.media)
    if batch.alerts:
        sqlite_alerts.insert_rows(conn, run_id, batch.alerts)
    if batch.heartbeat_at is not None and batch.rank is not None:
        _ranks.heartbeat(conn, run_id, batch.rank, batch.heartbeat_at)
    elif batch.heartbeat_at is not None:
        _write_heartbeat(conn, run_id, batch.heartbeat_at)
    return True
