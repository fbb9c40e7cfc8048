"""What a local root has shipped to its server: ``sync.db`` beside ``runpoint.db``.

The server's own counts are the truth about metric points and media (a sync asks for
them first); this file remembers what the server cannot tell cheaply: which files were
uploaded at which size and time, which run-level values were last pushed, which
truncations (a resumed run dropping what its killed attempt logged) still need to reach
the server, and the *generation* of each run, bumped whenever the local history of a run
is cut, so the idempotency keys of batches sent afterwards never match earlier ones.

A run is synced by one process at a time: :meth:`SyncState.lock` takes a file lock that
the training process's replicator holds while it lives.

Example::

    state = SyncState(root)
    with state.lock(run_id) as held:
        if held: ...
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

STATE_FILE = "sync.db"
LOCK_DIR = ".sync-locks"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id       TEXT PRIMARY KEY,
    generation   INTEGER NOT NULL DEFAULT 0,
    resume_count INTEGER,
    pushed       TEXT,
    done         INTEGER NOT NULL DEFAULT 0,
    synced_at    REAL,
    pending      INTEGER,
    error        TEXT
);
CREATE TABLE IF NOT EXISTS files (
    run_id   TEXT NOT NULL,
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sent_at  REAL NOT NULL,
    PRIMARY KEY (run_id, path)
);
CREATE TABLE IF NOT EXISTS truncations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL,
    after_step INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class RunSyncState:
    """One run's row: ``done`` once its final status and every file reached the server."""

    run_id: str
    generation: int = 0
    resume_count: int | None = None
    pushed: str | None = None
    done: bool = False
    synced_at: float | None = None
    pending: int | None = None
    error: str | None = None


class SyncState:
    """The ``sync.db`` of one local root (thread-safe; one connection per thread)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.path = self.root / STATE_FILE
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def run(self, run_id: str) -> RunSyncState:
        row = self._conn().execute(
            "SELECT run_id, generation, resume_count, pushed, done, synced_at, pending, error FROM runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        if row is None:
            return RunSyncState(run_id)
        return RunSyncState(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])

    def all_runs(self) -> dict[str, RunSyncState]:
        ids = [r[0] for r in self._conn().execute("SELECT run_id FROM runs")]
        return {run_id: self.run(run_id) for run_id in ids}

    def update(self, run_id: str, **fields: object) -> None:
        """Set some columns of the run's row (created when missing)."""
        conn = self._conn()
        conn.execute("INSERT OR IGNORE INTO runs (run_id) VALUES (?)", (run_id,))
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            conn.execute(f"UPDATE runs SET {assignments} WHERE run_id = ?", (*fields.values(), run_id))

    def next_generation(self, run_id: str) -> int:
        current = self.run(run_id).generation + 1
        self.update(run_id, generation=current)
        return current

    # -- files -------------------------------------------------------------------------

    def sent_files(self, run_id: str) -> dict[str, tuple[int, int, float]]:
        rows = self._conn().execute("SELECT path, size, mtime_ns, sent_at FROM files WHERE run_id = ?", (run_id,))
        return {path: (size, mtime, sent) for path, size, mtime, sent in rows}

    def file_sent(self, run_id: str, path: str, size: int, mtime_ns: int) -> None:
        self._conn().execute(
            "INSERT INTO files (run_id, path, size, mtime_ns, sent_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
            " sent_at = excluded.sent_at",
            (run_id, path, size, mtime_ns, time.time()),
        )

    def forget_files(self, run_id: str, prefix: str) -> None:
        self._conn().execute("DELETE FROM files WHERE run_id = ? AND substr(path, 1, ?) = ?", (run_id, len(prefix), prefix))

    # -- truncations -------------------------------------------------------------------

    def add_truncation(self, run_id: str, after_step: int) -> None:
        self._conn().execute("INSERT INTO truncations (run_id, after_step) VALUES (?, ?)", (run_id, after_step))

    def truncations(self, run_id: str) -> list[tuple[int, int]]:
        """``(id, after_step)`` of the run's truncations not yet applied on the server, oldest first."""
        return list(self._conn().execute(
            "SELECT id, after_step FROM truncations WHERE run_id = ? ORDER BY id", (run_id,)
        ))

    def truncation_applied(self, truncation_id: int) -> None:
        self._conn().execute("DELETE FROM truncations WHERE id = ?", (truncation_id,))

    # -- one syncer per run ------------------------------------------------------------

    @contextmanager
    def lock(self, run_id: str, *, wait: bool = False) -> Iterator[bool]:
        """Hold the run's sync lock for the block; yields False (without waiting) if another process holds it."""
        directory = self.root / LOCK_DIR
        directory.mkdir(exist_ok=True)
        fd = os.open(directory / f"{run_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
