"""The checkpoint registry of the embedded store: the ``checkpoints`` table of ``runpoint.db``.

It shares the :class:`~runpoint.store.sqlite.SQLiteStore`'s connections and
transactions, so a registry update is as durable as a metric flush.

Example::

    registry = SQLiteCheckpointRegistry(store)
    for record in registry.list_checkpoints(run.id):
        print(record.step, record.path, record.metrics)
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ..base import CheckpointRecord
from .store import SQLiteStore


class SQLiteCheckpointRegistry:
    """A :class:`~runpoint.store.base.CheckpointRegistry` over a :class:`SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"SQLiteCheckpointRegistry({self.store.location!r})"

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        with self.store._transaction() as conn:
            if record.is_best:
                conn.execute("UPDATE checkpoints SET is_best = 0 WHERE run_id = ?", (record.run_id,))
            conn.execute(
                "INSERT OR REPLACE INTO checkpoints (run_id, step, path, bytes, metrics, is_best, hash,"
                " created_at, deleted_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    record.run_id, record.step, record.path, record.bytes,
                    json.dumps(record.metrics, sort_keys=True), int(record.is_best), record.hash,
                    record.created_at, record.deleted_at,
                ),
            )

    def mark_checkpoint_deleted(self, run_id: str, step: int, deleted_at: float) -> None:
        with self.store._transaction() as conn:
            conn.execute(
                "UPDATE checkpoints SET deleted_at = ?, is_best = 0 WHERE run_id = ? AND step = ?",
                (deleted_at, run_id, step),
            )

    def set_best_checkpoint(self, run_id: str, step: int | None) -> None:
        with self.store._transaction() as conn:
            conn.execute(
                "UPDATE checkpoints SET is_best = (step IS ? AND deleted_at IS NULL) WHERE run_id = ?",
                (step, run_id),
            )

    def list_checkpoints(self, run_id: str, *, include_deleted: bool = False) -> list[CheckpointRecord]:
        sql = "SELECT * FROM checkpoints WHERE run_id = ?"
        if not include_deleted:
            sql += " AND deleted_at IS NULL"
        with self.store._translate_errors():
            rows = self.store._conn().execute(sql + " ORDER BY step", (run_id,)).fetchall()
        return [_record(row) for row in rows]


def _record(row: sqlite3.Row) -> CheckpointRecord:
    metrics: Any = json.loads(row["metrics"]) if row["metrics"] else {}
    return CheckpointRecord(
        run_id=row["run_id"], step=row["step"], path=row["path"], bytes=row["bytes"],
        created_at=row["created_at"], metrics=metrics if isinstance(metrics, dict) else {},
        is_best=bool(row["is_best"]), hash=row["hash"], deleted_at=row["deleted_at"],
    )
