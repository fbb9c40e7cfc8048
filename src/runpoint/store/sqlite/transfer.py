"""Copying one run's rows between SQLite databases, byte for byte.

A run lives in eight tables (the run, its tags, params, summary, metric chunks and
stats, checkpoint registry and media); the idempotency keys of its write batches
(``applied_batches``) are bookkeeping of the store that took its writes and stay there.
:func:`export_run_db` writes them into a fresh
database with the same schema; :func:`import_run_db` inserts them into a store, all in
one transaction. Rows are copied by SQLite itself (``INSERT ... SELECT`` across an
attached database), so metric blobs, floats and JSON arrive bit for bit; columns are
named explicitly, so the copy survives columns added in later schema versions, and an
older archive is migrated with the ordinary migrations before its rows are read.

Example::

    export_run_db(store, "2n36baffaakc", "/tmp/run.db")
    import_run_db(other_store, "/tmp/run.db", project="imported")
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import RunExistsError, RunNotFoundError, StoreError
from ._encoding import to_json
from .schema import ensure_schema

if TYPE_CHECKING:
    from .store import SQLiteStore

# every table holding a run's data, with the column naming the run (parents first)
RUN_TABLES: tuple[tuple[str, str], ...] = (
    ("runs", "id"),
    ("tags", "run_id"),
    ("params", "run_id"),
    ("summary", "run_id"),
    ("metric_chunks", "run_id"),
    ("metric_stats", "run_id"),
    ("checkpoints", "run_id"),
    ("media", "run_id"),
)


def _columns(conn: sqlite3.Connection, schema: str, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def _copy(conn: sqlite3.Connection, source: str, target: str, run_id: str) -> dict[str, int]:
    counts = {}
    for table, id_column in RUN_TABLES:
        wanted = _columns(conn, target, table)
        available = set(_columns(conn, source, table))
        columns = ", ".join(c for c in wanted if c in available)
        counts[table] = conn.execute(
            f"INSERT INTO {target}.{table} ({columns}) SELECT {columns} FROM {source}.{table} WHERE {id_column} = ?",
            (run_id,),
        ).rowcount
    return counts


IMPORTED_RUNNING = (
    "imported from an archive that recorded it as running; its process belongs to another root, so it ended there"
)


def _end_imported(conn: sqlite3.Connection, run_id: str) -> None:
    """An imported run is never live: ``running`` becomes ``crashed``, without host or pid.

    Its pid named a process on the machine that exported it (or whatever an archive's
    author wrote there): left in place, a Stop here could signal an unrelated local
    process. The original status and liveness are kept in ``meta["imported"]``.
    """
    row = conn.execute("SELECT status, host, pid, heartbeat_at, meta FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None or row[0] != "running":
        return
    status, host, pid, heartbeat_at, meta_text = row
    try:
        meta = json.loads(meta_text) if meta_text else {}
    except ValueError:
        meta = {}
    if not isinstance(meta, dict):
        meta = {}
    meta["imported"] = {"status": status, "host": host, "pid": pid, "heartbeat_at": heartbeat_at}
    conn.execute(
        "UPDATE runs SET status = 'crashed', host = NULL, pid = NULL, ended_at = COALESCE(ended_at, heartbeat_at),"
        " error = ?, meta = ? WHERE id = ?",
        (IMPORTED_RUNNING, to_json(meta), run_id),
    )


def table_rows(store: "SQLiteStore", table: str, run_id: str) -> list[dict[str, Any]]:
    """Every row of one of :data:`RUN_TABLES` for ``run_id``, as dicts of column -> value.

    Reports read the checkpoint registry through this, whatever its columns are.
    """
    id_column = dict(RUN_TABLES)[table]
    with store._translate_errors():
        cursor = store._conn().execute(f"SELECT * FROM {table} WHERE {id_column} = ?", (run_id,))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def export_run_db(store: "SQLiteStore", run_id: str, target: str | os.PathLike[str]) -> dict[str, int]:
    """Write the rows of ``run_id`` into a new database at ``target``; returns rows per table."""
    path = Path(target)
    if path.exists():
        raise StoreError(f"{path} exists already", path)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        ensure_schema(conn, str(path))
        conn.execute("ATTACH DATABASE ? AS source", (store.location,))
        conn.execute("BEGIN")  # one snapshot of the source across all tables
        try:
            counts = _copy(conn, "source", "main", run_id)
            if not counts["runs"]:
                raise RunNotFoundError(run_id, store.location)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("DETACH DATABASE source")
    except sqlite3.Error as exc:
        raise StoreError(f"could not export run {run_id} from {store.location}: {exc}", store.location) from exc
    finally:
        conn.close()
    return counts


def read_archived_run(source: str | os.PathLike[str]) -> tuple[str, str]:
    """The id and project of the one run in an exported database (migrated to this schema first)."""
    conn = sqlite3.connect(source, isolation_level=None)
    try:
        ensure_schema(conn, os.fspath(source))  # refuses a newer schema, migrates an older one
        rows = conn.execute("SELECT id, project FROM runs").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"{source} is not a runpoint run database: {exc}", os.fspath(source)) from exc
    finally:
        conn.close()
    if len(rows) != 1:
        raise StoreError(f"{source} holds {len(rows)} runs, expected exactly one", os.fspath(source))
    return rows[0][0], rows[0][1]


def import_run_db(
    store: "SQLiteStore", source: str | os.PathLike[str], *, project: str | None = None
) -> dict[str, int]:
    """Insert the one run of the exported database ``source`` into ``store`` in one transaction.

    ``project`` moves it to another project (its ``dir`` follows). A run the archive calls
    ``running`` arrives ended (see :func:`_end_imported`). Raises
    :class:`~runpoint.errors.RunExistsError` if the store has the run already.
    """
    run_id, old_project = read_archived_run(source)
    conn = store._conn()
    with store._translate_errors():
        conn.execute("ATTACH DATABASE ? AS archive", (os.fspath(source),))
    try:
        with store._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                raise RunExistsError(run_id, store.location)
            counts = _copy(conn, "archive", "main", run_id)
            target_project = project or old_project
            conn.execute(
                "UPDATE runs SET project = ?, dir = ? WHERE id = ?", (target_project, f"{target_project}/{run_id}", run_id)
            )
            _end_imported(conn, run_id)
    finally:
        with store._translate_errors():
            conn.execute("DETACH DATABASE archive")
    return counts

