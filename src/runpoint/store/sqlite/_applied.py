"""The idempotency keys of write batches: the ``applied_batches`` table.

A :class:`~runpoint.store.base.WriteBatch` with a ``sequence`` is applied at most once
per run. :func:`claim` records the key inside the transaction that applies the batch, so
the key and the batch's rows commit or roll back together; :func:`is_applied` lets the
store skip a known retry before it writes anything outside the database (media files).
"""

from __future__ import annotations

import sqlite3


def claim(conn: sqlite3.Connection, run_id: str, sequence: int) -> bool:
    """Record ``(run_id, sequence)`` in the caller's transaction; False if it was there already."""
    return conn.execute(
        "INSERT OR IGNORE INTO applied_batches (run_id, sequence) VALUES (?, ?)", (run_id, sequence)
    ).rowcount > 0


def is_applied(conn: sqlite3.Connection, run_id: str, sequence: int) -> bool:
    """True if a batch of ``run_id`` with this sequence has been applied (as of this read)."""
    return conn.execute(
        "SELECT 1 FROM applied_batches WHERE run_id = ? AND sequence = ?", (run_id, sequence)
    ).fetchone() is not None
