"""The ``run_ranks`` table: one row per process of a multi-rank job's run.

Functions take a connection; writes run inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3

from ..base import RankRecord, RunStatus

_COLUMNS = "run_id, rank, host, pid, job, started_at, heartbeat_at, status, error, ended_at"


def register(conn: sqlite3.Connection, record: RankRecord, reset: bool) -> None:
    if reset:
        conn.execute("DELETE FROM run_ranks WHERE run_id = ?", (record.run_id,))
    conn.execute(
        f"INSERT OR REPLACE INTO run_ranks ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (record.run_id, record.rank, record.host, record.pid, record.job, record.started_at, record.heartbeat_at,
         record.status.value, record.error, record.ended_at),
    )


def select(conn: sqlite3.Connection, run_id: str) -> list[RankRecord]:
    rows = conn.execute(f"SELECT {_COLUMNS} FROM run_ranks WHERE run_id = ? ORDER BY rank", (run_id,)).fetchall()
    return [
        RankRecord(run_id=row["run_id"], rank=row["rank"], host=row["host"], pid=row["pid"], job=row["job"],
                   started_at=row["started_at"], heartbeat_at=row["heartbeat_at"], status=RunStatus(row["status"]),
                   error=row["error"], ended_at=row["ended_at"])
        for row in rows
    ]


def set_status(conn: sqlite3.Connection, run_id: str, rank: int, status: RunStatus, error: str | None,
               ended_at: float | None) -> None:
    conn.execute(
        "UPDATE run_ranks SET status = ?, error = ?, ended_at = ? WHERE run_id = ? AND rank = ?",
        (status.value, error, ended_at, run_id, rank),
    )


def heartbeat(conn: sqlite3.Connection, run_id: str, rank: int, heartbeat_at: float) -> None:
    """One rank's heartbeat: its row, the run's row for rank 0, and undoing a verdict about this rank.

    A reader that found this rank silent marked the run crashed "rank N ..."; the rank
    beating again proves it alive. A verdict about another rank stays.
    """
    conn.execute("UPDATE run_ranks SET heartbeat_at = ? WHERE run_id = ? AND rank = ?", (heartbeat_at, run_id, rank))
    prefix = f"rank {rank} "
    conn.execute(
        "UPDATE runs SET heartbeat_at = CASE WHEN ? = 0 THEN ? ELSE heartbeat_at END,"
        " ended_at = CASE WHEN status = 'crashed' AND substr(error, 1, ?) = ? THEN NULL ELSE ended_at END,"
        " status = CASE WHEN status = 'crashed' AND substr(error, 1, ?) = ? THEN 'running' ELSE status END"
        " WHERE id = ?",
        (rank, heartbeat_at, len(prefix), prefix, len(prefix), prefix, run_id),
    )
