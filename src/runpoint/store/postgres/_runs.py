"""The ``runs`` table in PostgreSQL: rows to :class:`RunRecord`, creating, choosing, changing and deleting runs.

The same statements as the SQLite store's ``_runs`` and ``_filters`` modules, in
PostgreSQL's spelling (``%s`` parameters, ``= ANY(%s)`` for lists). Writes run inside the
caller's transaction.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..base import Condition, RunQuery, RunRecord, RunStatus
from ..encoding import as_number, to_json
from ._connections import Connection

RUN_COLUMNS = (
    "id, project, name, status, notes, grp, config_hash, dir, host, pid, created_at, heartbeat_at, ended_at,"
    " resume_count, error, ARRAY(SELECT tag FROM tags WHERE tags.run_id = runs.id ORDER BY tag) AS tag_list"
)

# every table with rows of a run besides ``runs`` (their foreign keys cascade too; explicit is clearer)
RUN_DATA_TABLES = (
    "metric_chunks", "metric_stats", "summary", "params", "tags", "checkpoints", "media", "applied_batches",
    "run_ranks", "alerts",
)

# a JSON number as Python's json writes one (NaN and Infinity are not numbers here, as in SQLite's json_type)
_JSON_NUMBER = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


def record(row: Mapping[str, Any]) -> RunRecord:
    """The run of a row selected with :data:`RUN_COLUMNS`."""
    return RunRecord(
        id=row["id"], project=row["project"], name=row["name"], status=RunStatus(row["status"]),
        created_at=row["created_at"], heartbeat_at=row["heartbeat_at"], dir=row["dir"], ended_at=row["ended_at"],
        notes=row["notes"], tags=tuple(row["tag_list"] or ()), group=row["grp"], config_hash=row["config_hash"],
        host=row["host"], pid=row["pid"], resume_count=row["resume_count"], error=row["error"],
    )


def write_tags(conn: Connection, run_id: str, tags: Sequence[str]) -> None:
    if tags:
        conn.execute(
            "INSERT INTO tags (run_id, tag) SELECT %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
            (run_id, list(dict.fromkeys(tags))),
        )


def write_params(conn: Connection, run_id: str, params: Mapping[str, Any]) -> None:
    if params:
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO params (run_id, key, value, num) VALUES (%s, %s, %s, %s)"
                " ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value, num = excluded.num",
                [(run_id, key, to_json(value), as_number(value)) for key, value in params.items()],
            )


def insert_run(conn: Connection, run: RunRecord, params: Mapping[str, Any], meta: Mapping[str, Any] | None) -> None:
    """Insert the run, its tags and params; psycopg.errors.UniqueViolation if the id exists."""
    conn.execute(
        "INSERT INTO runs (id, project, name, status, notes, grp, config_hash, dir, host, pid,"
        " created_at, heartbeat_at, ended_at, resume_count, error, meta)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (run.id, run.project, run.name, run.status.value, run.notes, run.group, run.config_hash, run.dir, run.host,
         run.pid, run.created_at, run.heartbeat_at, run.ended_at, run.resume_count, run.error,
         to_json(dict(meta)) if meta is not None else None),
    )
    write_tags(conn, run.id, run.tags)
    write_params(conn, run.id, params)


def reopen(conn: Connection, run_id: str, *, host: str, pid: int, now: float) -> bool:
    """Mark a run that is not running as running again; False if none was changed."""
    return conn.execute(
        "UPDATE runs SET status = 'running', ended_at = NULL, error = NULL, host = %s, pid = %s,"
        " heartbeat_at = %s, resume_count = resume_count + 1 WHERE id = %s AND status != 'running'",
        (host, pid, now, run_id),
    ).rowcount > 0


def set_status(
    conn: Connection, run_id: str, status: RunStatus, *, error: str | None, ended_at: float | None,
    expect: Sequence[RunStatus] | None, heartbeat_before: float | None,
) -> bool:
    """The compare-and-set of ``set_status`` in one statement; True if it changed."""
    sql = "UPDATE runs SET status = %s, error = %s, ended_at = %s WHERE id = %s"
    args: list[Any] = [status.value, error, ended_at, run_id]
    if expect:
        sql += " AND status = ANY(%s)"
        args.append([s.value for s in expect])
    if heartbeat_before is not None:
        sql += " AND heartbeat_at < %s"
        args.append(heartbeat_before)
    return conn.execute(sql, args).rowcount > 0


def select_run(conn: Connection, run_id: str) -> RunRecord | None:
    row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)).fetchone()
    return None if row is None else record(row)


def find_runs(conn: Connection, text: str) -> list[RunRecord]:
    """Runs whose id starts with ``text`` or whose name is ``text``, newest first."""
    rows = conn.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE starts_with(id, %s) OR name = %s ORDER BY created_at DESC, id DESC",
        (text, text),
    ).fetchall()
    return [record(row) for row in rows]


def count_runs(conn: Connection, project: str | None) -> int:
    if project is None:
        row = conn.execute("SELECT count(*) AS n FROM runs").fetchone()
    else:
        row = conn.execute("SELECT count(*) AS n FROM runs WHERE project = %s", (project,)).fetchone()
    return int(row["n"]) if row else 0


def status_counts(conn: Connection, project: str | None) -> dict[str, dict[str, int]]:
    where, args = (" WHERE project = %s", (project,)) if project is not None else ("", ())
    rows = conn.execute(f"SELECT project, status, count(*) AS n FROM runs{where} GROUP BY project, status", args)
    result: dict[str, dict[str, int]] = {}
    for row in rows.fetchall():
        result.setdefault(row["project"], {})[row["status"]] = int(row["n"])
    return result


def list_runs(conn: Connection, query: RunQuery) -> list[RunRecord]:
    where, args = run_filter_sql(query)
    return [record(row) for row in conn.execute(f"SELECT {RUN_COLUMNS} FROM runs{where}", args).fetchall()]


def delete_run(conn: Connection, run_id: str) -> bool:
    """Delete the run and its rows in every table; False if it was not there."""
    for table in RUN_DATA_TABLES:
        conn.execute(f"DELETE FROM {table} WHERE run_id = %s", (run_id,))
    return conn.execute("DELETE FROM runs WHERE id = %s", (run_id,)).rowcount > 0


def run_filter_sql(query: RunQuery) -> tuple[str, list[Any]]:
    """``(" WHERE ... ORDER BY ... LIMIT %s", args)`` to append to ``SELECT ... FROM runs``."""
    where: list[str] = []
    args: list[Any] = []
    simple: list[tuple[str, Any]] = [
        ("project = %s", query.project), ("grp = %s", query.group),
        ("starts_with(config_hash, %s)", query.config_hash or None),
        ("status = ANY(%s)", [s.value for s in query.statuses] or None), ("id = ANY(%s)", list(query.ids) or None),
    ]
    for clause, value in simple:
        if value is not None:
            where.append(clause)
            args.append(value)
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM tags WHERE tags.run_id = runs.id AND tags.tag = %s)")
        args.append(tag)
    for condition in query.conditions:
        clause, clause_args = condition_sql(condition)
        where.append(clause)
        args.extend(clause_args)
    sql = " WHERE " + " AND ".join(where) if where else ""
    order = "DESC" if query.newest_first else "ASC"
    sql += f" ORDER BY created_at {order}, id {order}"
    if query.limit is not None:
        sql += " LIMIT %s"
        args.append(query.limit)
    return sql, args


def condition_sql(condition: Condition) -> tuple[str, list[Any]]:
    """SQL for one filter; ``condition.op`` is one of the six operators (checked here too)."""
    op, value, key = condition.op, condition.value, condition.key
    if op not in ("<", "<=", ">", ">=", "=", "!="):
        raise ValueError(f"unknown operator {op!r} in {condition}")
    numeric = isinstance(value, (int, float))  # bools count as 1 and 0
    if condition.scope == "params":
        column, operand = ("p.num", float(value)) if numeric else ("p.value", to_json(value))  # type: ignore[arg-type]
        return f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id AND p.key = %s AND {column} {op} %s)", [
            key, operand]
    if condition.scope == "metrics":
        if not numeric:
            raise ValueError(f"metrics.{key} compares numbers, not {value!r}")
        sql = f"EXISTS (SELECT 1 FROM metric_stats m WHERE m.run_id = runs.id AND m.key = %s AND m.vlast {op} %s)"
        return sql, [key, float(value)]  # type: ignore[arg-type]
    if numeric:
        as_num = (f"CASE WHEN s.value = 'true' THEN 1.0 WHEN s.value = 'false' THEN 0.0"
                  f" WHEN s.value ~ '{_JSON_NUMBER}' THEN s.value::double precision END")
        sql = f"EXISTS (SELECT 1 FROM summary s WHERE s.run_id = runs.id AND s.key = %s AND {as_num} {op} %s)"
        return sql, [key, float(value)]  # type: ignore[arg-type]
    sql = f"EXISTS (SELECT 1 FROM summary s WHERE s.run_id = runs.id AND s.key = %s AND s.value {op} %s)"
    return sql, [key, to_json(value)]
