"""A run's alerts in the embedded store: the ``alerts`` table of ``runpoint.db``.

Alerts are written with the rest of a :class:`~runpoint.store.base.WriteBatch`
(:func:`insert_rows`, inside the batch's transaction, so a batch applied twice stores
them once); :class:`SQLiteAlertStore` reads them.

Example::

    alerts = SQLiteAlertStore(store)
    for alert in alerts.read_alerts(run.id):
        print(alert.level, alert.title)
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Sequence

from ..records import AlertRecord

if TYPE_CHECKING:  # the store imports this module to write a batch's alerts
    from .store import SQLiteStore

_COLUMNS = "run_id, time, step, level, kind, key, title, text"
_MAX_VARIABLES = 500  # ids per IN (...): well under SQLite's limit


def insert_rows(conn: sqlite3.Connection, run_id: str, alerts: Sequence[AlertRecord]) -> None:
    """Insert ``alerts`` for ``run_id`` in the caller's transaction; the store numbers them."""
    conn.executemany(
        f"INSERT INTO alerts ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [(run_id, a.time, a.step, a.level, a.kind, a.key, a.title, a.text) for a in alerts],
    )


def alert_record(row: sqlite3.Row | tuple) -> AlertRecord:
    run_id, time, step, level, kind, key, title, text, alert_id = row
    return AlertRecord(run_id=run_id, time=time, level=level, kind=kind, title=title, text=text, step=step,
                       key=key, id=alert_id)


class SQLiteAlertStore:
    """The :class:`~runpoint.store.base.AlertStore` of a :class:`SQLiteStore`."""

    def __init__(self, store: "SQLiteStore") -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"SQLiteAlertStore({self.store.location!r})"

    def read_alerts(self, run_id: str, *, after_id: int = 0, limit: int | None = None) -> list[AlertRecord]:
        sql = f"SELECT {_COLUMNS}, id FROM alerts WHERE run_id = ? AND id > ? ORDER BY id"
        args: tuple = (run_id, int(after_id))
        if limit is not None:
            sql += " LIMIT ?"
            args += (max(0, int(limit)),)
        with self.store._translate_errors():
            rows = self.store._conn().execute(sql, args).fetchall()
        return [alert_record(tuple(row)) for row in rows]

    def alert_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        ids = list(dict.fromkeys(run_ids))
        out: dict[str, dict[str, int]] = {}
        with self.store._translate_errors():
            conn = self.store._conn()
            for start in range(0, len(ids), _MAX_VARIABLES):
                part = ids[start:start + _MAX_VARIABLES]
                rows = conn.execute(
                    f"SELECT run_id, level, count(*) FROM alerts WHERE run_id IN ({','.join('?' * len(part))})"
                    " GROUP BY run_id, level", part,
                ).fetchall()
                for run_id, level, count in rows:
                    out.setdefault(run_id, {})[level] = count
        return out
