"""Reads of a run's params, summary, meta and metric aggregates from the PostgreSQL store."""

from __future__ import annotations

import json
import math
from typing import Any, Literal, Sequence

from ..base import MetricStats
from ._connections import Connection


def schema_missing(conn: Connection) -> bool:
    """True if the connection's schema has no runpoint tables (a database nobody opened as a store)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NULL AS missing").fetchone()
    return bool(row and row["missing"])


def metric_keys(conn: Connection, run_id: str) -> list[str]:
    rows = conn.execute("SELECT key FROM metric_stats WHERE run_id = %s ORDER BY key", (run_id,)).fetchall()
    return [row["key"] for row in rows]


def metric_stats(conn: Connection, run_id: str, keys: Sequence[str] | None) -> dict[str, MetricStats]:
    """The aggregates of ``keys`` (every key when None), by key."""
    sql = "SELECT * FROM metric_stats WHERE run_id = %s"
    args: list[Any] = [run_id]
    if keys is not None:
        sql += " AND key = ANY(%s)"
        args.append(list(keys))
    return {
        row["key"]: MetricStats(
            key=row["key"], count=row["count"], last=math.nan if row["vlast"] is None else row["vlast"],
            last_step=row["last_step"], last_time=row["last_time"],
            min=row["vmin"], min_step=row["min_step"], max=row["vmax"], max_step=row["max_step"],
        )
        for row in conn.execute(sql + " ORDER BY key", args).fetchall()
    }


def json_values(conn: Connection, table: Literal["params", "summary"], run_id: str) -> dict[str, Any]:
    """A run's rows of ``params`` or ``summary``, key -> decoded JSON value, by key."""
    rows = conn.execute(f"SELECT key, value FROM {table} WHERE run_id = %s ORDER BY key", (run_id,)).fetchall()
    return {row["key"]: json.loads(row["value"]) for row in rows}


def meta(conn: Connection, run_id: str) -> dict[str, Any] | None:
    """The run's metadata, {} when none was set, None when the run does not exist."""
    row = conn.execute("SELECT meta FROM runs WHERE id = %s", (run_id,)).fetchone()
    if row is None:
        return None
    return json.loads(row["meta"]) if row["meta"] else {}
