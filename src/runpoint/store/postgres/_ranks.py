"""The ``run_ranks`` table in PostgreSQL: one row per process of a multi-rank job's run (as in the SQLite store)."""

from __future__ import annotations

from ..base import RankRecord, RunStatus
from ._connections import Connection

_COLUMNS = "run_id, rank, host, pid, job, started_at, heartbeat_at, status, error, ended_at"


def register(conn: Connection, record: RankRecord, reset: bool) -> None:
    if reset:
        conn.execute("DELETE FROM run_ranks WHERE run_id = %s", (record.run_id,))
    conn.execute(
        f"INSERT INTO run_ranks ({_COLUMNS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        " ON CONFLICT (run_id, rank) DO UPDATE SET host = excluded.host, pid = excluded.pid, job = excluded.job,"
        " started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, status = excluded.status,"
        " error = excluded.error, ended_at = excluded.ended_at",
        (record.run_id, record.rank, record.host, record.pid, record.job, record.started_at, record.heartbeat_at,
         record.status.value, record.error, record.ended_at),
    )


def select(conn: Connection, run_id: str) -> list[RankRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM run_ranks WHERE run_id = %s ORDER BY rank", (run_id,)).fetchall()
    return [
        RankRecord(run_id=row["run_id"], rank=row["rank"], host=row["host"], pid=row["pid"], job=row["job"],
                   started_at=row["started_at"], heartbeat_at=row["heartbeat_at"], status=RunStatus(row["status"]),
                   error=row["error"], ended_at=row["ended_at"])
        for row in rows
    ]


def set_status(conn: Connection, run_id: str, rank: int, status: RunStatus, error: str | None,
               ended_at: float | None) -> None:
    conn.execute(
        "UPDATE run_ranks SET status = %s, error = %s, ended_at = %s WHERE run_id = %s AND rank = %s",
        (status.value, error, ended_at, run_id, rank),
    )


def heartbeat(conn: Connection, run_id: str, rank: int, heartbeat_at: float) -> None:
    """One rank's heartbeat: its row, the run's row for rank 0, and undoing a verdict about this rank.

    A reader that found this rank silent marked the run crashed "rank N ..."; the rank
    beating again proves it alive. A verdict about another rank stays.
    """
    conn.execute("UPDATE run_ranks SET heartbeat_at = %s WHERE run_id = %s AND rank = %s",
                 (heartbeat_at, run_id, rank))
    revived = "status = 'crashed' AND starts_with(coalesce(error, ''), %(prefix)s)"
    conn.execute(
        "UPDATE runs SET heartbeat_at = CASE WHEN %(rank)s = 0 THEN %(at)s ELSE heartbeat_at END,"
        f" ended_at = CASE WHEN {revived} THEN NULL ELSE ended_at END,"
        f" status = CASE WHEN {revived} THEN 'running' ELSE status END"
        " WHERE id = %(run)s",
        {"rank": rank, "at": heartbeat_at, "prefix": f"rank {rank} ", "run": run_id},
    )
