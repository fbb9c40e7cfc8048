"""Logged media in the PostgreSQL store: rows of ``media``, with each file's bytes in the row.

A PostgreSQL store has no run directory, so the bytes of a record's file (an image's
PNG) are kept in the row's ``file`` column, written in the batch's transaction (a row
never lacks its file); the team server will move them to its object store. A record's
``path`` must stay under ``media/`` as in the SQLite store, which refuses the same paths.
One key holds one value per step: logging it again at the same step replaces it.

Example::

    for key in store.media_keys(run_id):
        print(key.key, key.kind, key.count, store.read_media_file(run_id, key.key, key.last_step) is not None)
"""

from __future__ import annotations

import json
import posixpath
from typing import Any, Mapping, Sequence

from ...errors import StoreError
from ..base import MediaKey, MediaRecord
from ._connections import Connection


def check_path(record: MediaRecord, location: str) -> None:
    """StoreError unless the record's path is relative and inside ``media/`` (as the SQLite store checks)."""
    if record.path is None:
        return
    normal = posixpath.normpath(record.path.replace("\\", "/"))
    if record.path.startswith(("/", "\\")) or not normal.startswith("media/") or ".." in normal.split("/"):
        raise StoreError(f"media path {record.path!r} of key {record.key!r} leaves the run's media/", location)


def insert_rows(conn: Connection, run_id: str, records: Sequence[MediaRecord], location: str) -> None:
    """Insert or replace the rows of ``records`` with their files, inside the caller's transaction."""
    for record in records:
        check_path(record, location)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO media (run_id, key, step, kind, path, data, time, file) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (run_id, key, step) DO UPDATE SET kind = excluded.kind, path = excluded.path,"
            " data = excluded.data, time = excluded.time, file = excluded.file",
            [(run_id, r.key, r.step, r.kind, r.path, json.dumps(r.data, sort_keys=True), r.time, r.file)
             for r in records],
        )


def media_keys(conn: Connection, run_id: str) -> list[MediaKey]:
    rows = conn.execute(
        "SELECT key, max(kind) AS kind, count(*) AS n, min(step) AS first, max(step) AS last"
        " FROM media WHERE run_id = %s GROUP BY key ORDER BY key",
        (run_id,),
    ).fetchall()
    return [MediaKey(key=row["key"], kind=row["kind"], count=row["n"], first_step=row["first"],
                     last_step=row["last"]) for row in rows]


def _record(row: Mapping[str, Any]) -> MediaRecord:
    data: dict[str, Any] = json.loads(row["data"]) if row["data"] else {}
    return MediaRecord(key=row["key"], step=row["step"], kind=row["kind"], time=row["time"], data=data,
                       path=row["path"])


def read_media(conn: Connection, run_id: str, key: str, step: int | None, min_step: int | None,
               max_step: int | None) -> list[MediaRecord]:
    sql = "SELECT key, step, kind, path, data, time FROM media WHERE run_id = %s AND key = %s"
    args: list[Any] = [run_id, key]
    for clause, value in (("step = %s", step), ("step >= %s", min_step), ("step <= %s", max_step)):
        if value is not None:
            sql += f" AND {clause}"
            args.append(value)
    return [_record(row) for row in conn.execute(sql + " ORDER BY step", args).fetchall()]


def read_file(conn: Connection, run_id: str, key: str, step: int) -> bytes | None:
    row = conn.execute("SELECT file FROM media WHERE run_id = %s AND key = %s AND step = %s",
                       (run_id, key, step), binary=True).fetchone()
    return None if row is None or row["file"] is None else bytes(row["file"])
