"""A run's alerts in PostgreSQL: the ``alerts`` table, as in the SQLite store.

Functions take a connection; :func:`insert_rows` runs inside the batch's transaction.
:class:`~runpoint.store.postgres.PostgresStore` is its own
:class:`~runpoint.store.base.AlertStore` and calls these.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..records import AlertRecord
from ._connections import Connection

_COLUMNS = "run_id, time, step, level, kind, key, title, text"


def insert_rows(conn: Connection, run_id: str, alerts: Sequence[AlertRecord]) -> None:
    with conn.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO alerts ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [(run_id, a.time, a.step, a.level, a.kind, a.key, a.title, a.text) for a in alerts],
        )


def select(conn: Connection, run_id: str, after_id: int, limit: int | None) -> list[AlertRecord]:
    sql = f"SELECT {_COLUMNS}, id FROM alerts WHERE run_id = %s AND id > %s ORDER BY id"
    args: tuple = (run_id, int(after_id))
    if limit is not None:
        sql += " LIMIT %s"
        args += (max(0, int(limit)),)
    return [_record(row) for row in conn.execute(sql, args).fetchall()]


def counts(conn: Connection, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        "SELECT run_id, level, count(*) AS n FROM alerts WHERE run_id = ANY(%s) GROUP BY run_id, level",
        (list(dict.fromkeys(run_ids)),),
    ).fetchall()
    for row in rows:
        out.setdefault(row["run_id"], {})[row["level"]] = int(row["n"])
    return out


def _record(row: Mapping[str, Any]) -> AlertRecord:
    return AlertRecord(run_id=row["run_id"], time=row["time"], level=row["level"], kind=row["kind"],
                       title=row["title"], text=row["text"], step=row["step"], key=row["key"], id=int(row["id"]))
