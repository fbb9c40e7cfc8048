"""Logged media in the embedded store: rows of ``media`` and files under a run's ``media/``.

Media reach the store the way metrics do, in the :class:`~runpoint.store.base.WriteBatch`
of a writer flush (:meth:`SQLiteStore.write` calls :func:`write_files` and then
:func:`insert_rows` inside its transaction). A record's file is written atomically
*before* the transaction that inserts its row commits, so a crash in between leaves at
worst a file without a row, which readers never see, and never a row without its file.
One key holds one value per step: logging it again at the same step replaces it.

Example::

    media = SQLiteMediaStore(store)
    for key in media.media_keys(run_id):
        print(key.key, key.kind, key.count)
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..._util.fs import write_atomic
from ...errors import RunNotFoundError, StoreError
from ..base import MediaKey, MediaRecord

if TYPE_CHECKING:
    from .store import SQLiteStore


def run_directory(store: "SQLiteStore", run_id: str) -> Path:
    """The directory of ``run_id``: the store's root joined with the run's ``dir``."""
    with store._translate_errors():
        row = store._conn().execute("SELECT dir FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise RunNotFoundError(run_id, store.location)
    return Path(store.location).parent / row[0]


def write_files(store: "SQLiteStore", run_id: str, records: Sequence[MediaRecord]) -> None:
    """Write the files of ``records`` that carry bytes, each atomically, under the run's ``media/``."""
    with_files = [record for record in records if record.file is not None and record.path]
    if not with_files:
        return
    run_dir = run_directory(store, run_id)
    media_dir = (run_dir / "media").resolve()
    for record in with_files:
        target = (run_dir / (record.path or "")).resolve()
        if media_dir not in target.parents:  # media.py makes safe paths; refuse anything else
            raise StoreError(f"media path {record.path!r} of key {record.key!r} leaves {media_dir}", store.location)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, record.file)  # type: ignore[arg-type]
        except OSError as exc:
            raise StoreError(f"could not write {target}: {exc}", store.location) from exc


def insert_rows(conn: sqlite3.Connection, run_id: str, records: Sequence[MediaRecord]) -> None:
    """Insert or replace the rows of ``records``, inside the caller's transaction."""
    conn.executemany(
        "INSERT INTO media (run_id, key, step, kind, path, data, time) VALUES (?,?,?,?,?,?,?)"
        " ON CONFLICT (run_id, key, step) DO UPDATE SET"
        " kind = excluded.kind, path = excluded.path, data = excluded.data, time = excluded.time",
        [
            (run_id, r.key, r.step, r.kind, r.path, json.dumps(r.data, sort_keys=True), r.time)
            for r in records
        ],
    )


def _record(row: sqlite3.Row) -> MediaRecord:
    data: dict[str, Any] = json.loads(row["data"]) if row["data"] else {}
    return MediaRecord(
        key=row["key"], step=row["step"], kind=row["kind"], time=row["time"], data=data, path=row["path"]
    )


class SQLiteMediaStore:
    """A :class:`~runpoint.store.base.MediaStore` over an :class:`SQLiteStore`'s database.

    Example::

        images = SQLiteMediaStore(store).read_media(run_id, "val/samples", min_step=100)
    """

    def __init__(self, store: "SQLiteStore") -> None:
        self._store = store

    def media_keys(self, run_id: str) -> list[MediaKey]:
        with self._store._translate_errors():
            rows = self._store._conn().execute(
                "SELECT key, max(kind) AS kind, count(*) AS n, min(step) AS first, max(step) AS last"
                " FROM media WHERE run_id = ? GROUP BY key ORDER BY key",
                (run_id,),
            ).fetchall()
        return [
            MediaKey(key=row["key"], kind=row["kind"], count=row["n"], first_step=row["first"], last_step=row["last"])
            for row in rows
        ]

    def read_media(
        self, run_id: str, key: str, *, step: int | None = None,
        min_step: int | None = None, max_step: int | None = None,
    ) -> list[MediaRecord]:
        sql = "SELECT key, step, kind, path, data, time FROM media WHERE run_id = ? AND key = ?"
        args: list[Any] = [run_id, key]
        if step is not None:
            sql += " AND step = ?"
            args.append(step)
        if min_step is not None:
            sql += " AND step >= ?"
            args.append(min_step)
        if max_step is not None:
            sql += " AND step <= ?"
            args.append(max_step)
        with self._store._translate_errors():
            rows = self._store._conn().execute(sql + " ORDER BY step", args).fetchall()
        return [_record(row) for row in rows]
