"""Reads of a run's params, summary, meta and metric aggregates from the embedded store.

Functions take a connection; :class:`~runpoint.store.sqlite.store.SQLiteStore` owns the
connections and turns SQLite's errors into :class:`~runpoint.errors.StoreError`.
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any, Literal, Sequence

from ..base import MetricStats


def _null_to_nan(value: float | None) -> float:
    return math.nan if value is None else value


def metric_keys(conn: sqlite3.Connection, run_id: str) -> list[str]:
    rows = conn.execute("SELECT key FROM metric_stats WHERE run_id = ? ORDER BY key", (run_id,)).fetchall()
    return [row[0] for row in rows]


def metric_stats(conn: sqlite3.Connection, run_id: str, keys: Sequence[str] | None) -> dict[str, MetricStats]:
    """The aggregates of ``keys`` (every key when None), by key."""
    sql = "SELECT * FROM metric_stats WHERE run_id = ?"
    args: list[Any] = [run_id]
    if keys is not None:
        sql += f" AND key IN ({','.join('?' * len(keys))})"
        args.extend(keys)
    rows = conn.execute(sql + " ORDER BY key", args).fetchall()
    return {
        row["key"]: MetricStats(
            key=row["key"], count=row["count"], last=_null_to_nan(row["vlast"]),
            last_step=row["last_step"], last_time=row["last_time"],
            min=row["vmin"], min_step=row["min_step"], max=row["vmax"], max_step=row["max_step"],
        )
        for row in rows
    }


def json_values(conn: sqlite3.Connection, table: Literal["params", "summary"], run_id: str) -> dict[str, Any]:
    """A run's rows of ``params`` or ``summary``, key -> decoded JSON value, by key."""
    rows = conn.execute(f"SELECT key, value FROM {table} WHERE run_id = ? ORDER BY key", (run_id,)).fetchall()
    return {row["key"]: json.loads(row["value"]) for row in rows}


def meta(conn: sqlite3.Connection, run_id: str) -> dict[str, Any] | None:
    """The run's metadata, {} when none was set, None when the run does not exist."""
    row = conn.execute("SELECT meta FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        return None
    return json.loads(row["meta"]) if row["meta"] else {}
