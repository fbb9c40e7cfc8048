"""The checkpoint registry in PostgreSQL: the ``checkpoints`` table, as in the SQLite store.

Functions take a connection; writes run inside the caller's transaction.
:class:`~runpoint.store.postgres.PostgresStore` is its own
:class:`~runpoint.store.base.CheckpointRegistry` and calls these.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..base import CheckpointRecord
from ._connections import Connection


def add(conn: Connection, record: CheckpointRecord) -> None:
    if record.is_best:
        conn.execute("UPDATE checkpoints SET is_best = false WHERE run_id = %s", (record.run_id,))
    conn.execute(
        "INSERT INTO checkpoints (run_id, step, path, bytes, metrics, is_best, hash, created_at, deleted_at)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (run_id, step) DO UPDATE SET path = excluded.path,"
        " bytes = excluded.bytes, metrics = excluded.metrics, is_best = excluded.is_best, hash = excluded.hash,"
        " created_at = excluded.created_at, deleted_at = excluded.deleted_at",
        (record.run_id, record.step, record.path, record.bytes, json.dumps(record.metrics, sort_keys=True),
         record.is_best, record.hash, record.created_at, record.deleted_at),
    )


def mark_deleted(conn: Connection, run_id: str, step: int, deleted_at: float) -> None:
    conn.execute("UPDATE checkpoints SET deleted_at = %s, is_best = false WHERE run_id = %s AND step = %s",
                 (deleted_at, run_id, step))


def set_best(conn: Connection, run_id: str, step: int | None) -> None:
    conn.execute(
        "UPDATE checkpoints SET is_best = (step IS NOT DISTINCT FROM %s AND deleted_at IS NULL) WHERE run_id = %s",
        (step, run_id),
    )


def select(conn: Connection, run_id: str, include_deleted: bool) -> list[CheckpointRecord]:
    sql = "SELECT * FROM checkpoints WHERE run_id = %s"
    if not include_deleted:
        sql += " AND deleted_at IS NULL"
    return [_record(row) for row in conn.execute(sql + " ORDER BY step", (run_id,)).fetchall()]


def _record(row: Mapping[str, Any]) -> CheckpointRecord:
    metrics: Any = json.loads(row["metrics"]) if row["metrics"] else {}
    return CheckpointRecord(
        run_id=row["run_id"], step=row["step"], path=row["path"], bytes=row["bytes"], created_at=row["created_at"],
        metrics=metrics if isinstance(metrics, dict) else {}, is_best=row["is_best"], hash=row["hash"],
        deleted_at=row["deleted_at"],
    )
