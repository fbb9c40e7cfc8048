"""The ``runs`` table: run rows to :class:`RunRecord`, and the SQL of creating, listing and deleting runs.

Functions take a connection (and, for writes, run inside the caller's transaction);
:class:`~runpoint.store.sqlite.store.SQLiteStore` owns the connections and turns
missing rows into errors.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping, Sequence

from ..base import RunQuery, RunRecord, RunStatus
from ._encoding import to_json
from ._filters import run_filter_sql
from ._write import write_params, write_tags

RUN_COLUMNS = (
    "id, project, name, status, notes, grp, config_hash, dir, host, pid, created_at, "
    "heartbeat_at, ended_at, resume_count, error, "
    "(SELECT group_concat(tag, char(31)) FROM tags WHERE tags.run_id = runs.id) AS tag_list"
)

# every table with rows of a run besides ``runs`` itself, emptied when the run is deleted
RUN_DATA_TABLES = (
    "metric_chunks", "metric_stats", "summary", "params", "tags", "checkpoints", "media", "applied_batches",
    "run_ranks", "alerts",
)


def record(row: sqlite3.Row) -> RunRecord:
    """The run of a row selected with :data:`RUN_COLUMNS`."""
    tags = tuple(sorted(row["tag_list"].split("\x1f"))) if row["tag_list"] else ()
    return RunRecord(
        id=row["id"],
        project=row["project"],
        name=row["name"],
        status=RunStatus(row["status"]),
        created_at=row["created_at"],
        heartbeat_at=row["heartbeat_at"],
        dir=row["dir"],
        ended_at=row["ended_at"],
        notes=row["notes"],
        tags=tags,
        group=row["grp"],
        config_hash=row["config_hash"],
        host=row["host"],
        pid=row["pid"],
        resume_count=row["resume_count"],
        error=row["error"],
    )


def insert_run(
    conn: sqlite3.Connection, run: RunRecord, params: Mapping[str, Any], meta: Mapping[str, Any] | None
) -> None:
    """Insert the run, its tags and params; sqlite3.IntegrityError if the id exists."""
    conn.execute(
        "INSERT INTO runs (id, project, name, status, notes, grp, config_hash, dir, host, pid,"
        " created_at, heartbeat_at, ended_at, resume_count, error, meta)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            run.id, run.project, run.name, run.status.value, run.notes, run.group,
            run.config_hash, run.dir, run.host, run.pid, run.created_at, run.heartbeat_at,
            run.ended_at, run.resume_count, run.error,
            to_json(dict(meta)) if meta is not None else None,
        ),
    )
    write_tags(conn, run.id, run.tags)
    write_params(conn, run.id, params)


def reopen(conn: sqlite3.Connection, run_id: str, *, host: str, pid: int, now: float) -> bool:
    """Mark a run that is not running as running again; False if none was changed."""
    return conn.execute(
        "UPDATE runs SET status = 'running', ended_at = NULL, error = NULL, host = ?, pid = ?,"
        " heartbeat_at = ?, resume_count = resume_count + 1 WHERE id = ? AND status != 'running'",
        (host, pid, now, run_id),
    ).rowcount > 0


def set_status(
    conn: sqlite3.Connection,
    run_id: str,
    status: RunStatus,
    *,
    error: str | None,
    ended_at: float | None,
    expect: Sequence[RunStatus] | None,
    heartbeat_before: float | None,
) -> bool:
    """The compare-and-set of :meth:`SQLiteStore.set_status` in one statement; True if it changed."""
    sql = "UPDATE runs SET status = ?, error = ?, ended_at = ? WHERE id = ?"
    args: list[Any] = [status.value, error, ended_at, run_id]
    if expect:
        sql += f" AND status IN ({','.join('?' * len(expect))})"
        args.extend(s.value for s in expect)
    if heartbeat_before is not None:
        sql += " AND heartbeat_at < ?"
        args.append(heartbeat_before)
    return conn.execute(sql, args).rowcount > 0


def select_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return None if row is None else record(row)


def find_runs(conn: sqlite3.Connection, text: str) -> list[RunRecord]:
    """Runs whose id starts with ``text`` or whose name is ``text``, newest first."""
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE substr(id, 1, ?) = ? OR name = ?"
        " ORDER BY created_at DESC, id DESC",
        (len(text), text, text),
    ).fetchall()
    return [record(row) for row in rows]


def count_runs(conn: sqlite3.Connection, project: str | None) -> int:
    if project is None:
        return conn.execute("SELECT count(*) FROM runs").fetchone()[0]
    return conn.execute("SELECT count(*) FROM runs WHERE project = ?", (project,)).fetchone()[0]


def list_runs(conn: sqlite3.Connection, query: RunQuery) -> list[RunRecord]:
    where, args = run_filter_sql(query)
    rows = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs{where}", args).fetchall()
    return [record(row) for row in rows]


def delete_run(conn: sqlite3.Connection, run_id: str) -> bool:
    """Delete the run and its rows in every table, in the caller's transaction; False if it was not there."""
    for table in RUN_DATA_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    return conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0
