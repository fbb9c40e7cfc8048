"""The embedded store: one SQLite database in WAL mode per root.

Several processes may log into one database at once. Each write is one short
``BEGIN IMMEDIATE`` transaction (a writer's flush), SQLite's busy handler waits for the
lock rather than failing, and WAL lets readers proceed while a writer commits. With
``synchronous=NORMAL`` a committed flush survives the death of the process (SIGKILL); a
power loss may take the last commits, never the database's consistency. Connections are
per thread (writer, caller, a web server's workers).

This module owns connections and transactions; the SQL is in private modules beside it:
:mod:`._runs` (the runs table), :mod:`._write` (applying a batch), :mod:`._applied`
(batches' idempotency keys), :mod:`._ranks` (the ranks of a multi-rank run), :mod:`._reads`,
:mod:`._metrics` and :mod:`._truncate`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import quote

from ..._util.forksafe import call_after_fork, no_fork
from ...errors import RunExistsError, RunNotFoundError, RunpointError, StoreError
from .. import chunks
from ..base import (
    MetricSeries,
    MetricStats,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from . import _applied, _ranks, _reads, _runs, _truncate, _write
from . import media as sqlite_media
from ._encoding import to_json
from ._metrics import ChunkedMetrics
from .schema import ensure_schema

BUSY_TIMEOUT_S = 120.0

logger = logging.getLogger("runpoint")

# What SQLite says when it cannot create or grow the WAL index (-shm) or the log: a full disk
_NO_ROOM = ("disk i/o error", "database or disk is full")


class SQLiteStore:
    """A :class:`~runpoint.store.base.Store` over one SQLite file.

    Example::

        store = SQLiteStore("runpoint/runpoint.db")
        for run in store.list_runs(RunQuery(project="digits")):
            print(run.id, run.status)
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        if not self.path.exists():
            if not create:
                raise StoreError(f"no runpoint store at {self.path}", self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._metrics = ChunkedMetrics()
        self._closed = False
        self._snapshot_only = False
        try:
            conn = self._conn()
            with self._translate_errors():
                _switch_to_wal(conn)
                ensure_schema(conn, self.location)
        except StoreError as exc:
            if create or not str(exc.__cause__).lower().startswith(_NO_ROOM):
                raise
            self._open_snapshot(exc)
        call_after_fork(self._forget_connections_after_fork)  # a connection must not cross fork()

    def _open_snapshot(self, why: StoreError) -> None:
        """Read the database file alone, without the WAL, when there is no room to open it normally.

        A reader in WAL mode must create or grow ``runpoint.db-shm``; on a full disk it
        cannot, and every read fails with "disk I/O error". SQLite's ``immutable`` mode
        reads the database file without the WAL index: everything up to the last WAL
        checkpoint (all of it once the writers have closed), nothing a live writer has
        committed since. Writes are refused.
        """
        self.close()
        self._closed = False
        self._snapshot_only = True
        wal = self.path.with_name(self.path.name + "-wal")
        pending = wal.exists() and wal.stat().st_size > 0
        logger.warning(
            "runpoint: %s: the disk is full (%s), so the store is read as of its last checkpoint%s; "
            "free some space to see everything and to write again",
            self.location, why.__cause__, ", without what running writers committed since" if pending else "",
        )
        with self._translate_errors():
            ensure_schema(self._conn(), self.location)  # refuses a newer or older schema: no migration here

    @property
    def read_only(self) -> bool:
        """True when the store could only be opened for reading (see :meth:`_open_snapshot`)."""
        return self._snapshot_only

    # -- connections -----------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise StoreError("the store was closed", self.location)
            with self._translate_errors():
                if self._snapshot_only:
                    conn = sqlite3.connect(
                        f"file:{quote(str(self.path.resolve()))}?immutable=1", uri=True,
                        isolation_level=None, check_same_thread=False,
                    )
                    conn.row_factory = sqlite3.Row
                    conn.execute("PRAGMA query_only=ON")
                    self._local.conn = conn
                    with self._connections_lock:
                        self._connections.append(conn)
                    return conn
                conn = sqlite3.connect(
                    self.location, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute("PRAGMA synchronous=NORMAL")
                # checkpoint the WAL into the database every ~16 MiB instead of every 4 MiB:
                # fewer fsyncs on the writer's path, the same bytes in the end
                conn.execute("PRAGMA wal_autocheckpoint=4000")
                conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _forget_connections_after_fork(self) -> None:
        # A connection must not cross fork(); the child opens its own when it needs one.
        self._local = threading.local()
        self._connections = []
        self._connections_lock = threading.Lock()
        self._metrics.forget_all()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            hint = ""
            if str(exc).lower().startswith(_NO_ROOM):
                hint = f" (is the disk full? free some space on the disk holding {self.path.parent} and try again)"
            raise StoreError(f"{self.location}: {exc}{hint}", self.location) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        if self._snapshot_only:
            raise StoreError(
                f"{self.location}: the disk is full, so the store is open for reading only; "
                "free some space and try again", self.location,
            )
        conn = self._conn()
        with self._translate_errors(), no_fork():  # (see runpoint._util.forksafe)
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._follow_other_writers(conn)
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # SQLite may have rolled back already (disk full, I/O error): the original
                # error is the one to report, not "no transaction is active".
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _follow_other_writers(self, conn: sqlite3.Connection) -> None:
        """Forget the metrics' remembered chunk-list ends when another connection (store object,
        process) committed since this one's last write: ``PRAGMA data_version`` says so, read
        inside the write lock. Appending after a stale end collides with the other's chunks."""
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        seen = getattr(self._local, "data_version", None)  # (connection, version): versions are per connection
        if seen is None or seen[0] is not conn or seen[1] != version:
            self._metrics.forget_all()
            self._local.data_version = (conn, version)

    def close(self) -> None:
        self._closed = True
        self._release_connections()

    def _release_connections(self) -> None:
        """Close every connection this store opened; the next read or write opens a new one.

        A finished :class:`~runpoint.Run` calls it: its writer thread is gone, and holding
        two connections (four file descriptors) per finished run adds up in a sweep.
        Only for a moment when no other thread is using the store.
        """
        with self._connections_lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.location!r})"

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self, run: RunRecord, params: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        try:
            with self._transaction() as conn:
                _runs.insert_run(conn, run, params or {}, meta)
        except StoreError as exc:
            if isinstance(exc.__cause__, sqlite3.IntegrityError):
                raise RunExistsError(run.id, self.location) from exc
            raise

    def reopen_run(self, run_id: str, *, host: str, pid: int, now: float) -> RunRecord:
        with self._transaction() as conn:
            updated = _runs.reopen(conn, run_id, host=host, pid=pid, now=now)
        if not updated:
            record = self.get_run(run_id)  # RunNotFoundError when it is gone
            raise RunpointError(f"run {run_id} is running (pid {record.pid} on {record.host}): another process resumed it")
        return self.get_run(run_id)

    def set_status(
        self,
        run_id: str,
        status: RunStatus,
        *,
        error: str | None = None,
        ended_at: float | None = None,
        expect: Sequence[RunStatus] | None = None,
        heartbeat_before: float | None = None,
    ) -> bool:
        """Move a run to ``status``.

        ``expect`` and ``heartbeat_before`` make it a compare-and-set: the change happens
        only if the run is in one of ``expect`` and its heartbeat is older than
        ``heartbeat_before``, checked in the same statement.
        """
        with self._transaction() as conn:
            return _runs.set_status(
                conn, run_id, status, error=error, ended_at=ended_at, expect=expect, heartbeat_before=heartbeat_before
            )

    def register_rank(self, record: RankRecord, *, reset: bool = False) -> None:
        with self._transaction() as conn:
            _ranks.register(conn, record, reset)

    def list_ranks(self, run_id: str) -> list[RankRecord]:
        with self._translate_errors():
            return _ranks.select(self._conn(), run_id)

    def set_rank_status(
        self, run_id: str, rank: int, status: RunStatus, *, error: str | None = None, ended_at: float | None = None
    ) -> None:
        with self._transaction() as conn:
            _ranks.set_status(conn, run_id, rank, status, error, ended_at)

    def set_meta(self, run_id: str, meta: Mapping[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET meta = ? WHERE id = ?", (to_json(dict(meta)), run_id))

    def get_run(self, run_id: str) -> RunRecord:
        with self._translate_errors():
            record = _runs.select_run(self._conn(), run_id)
        if record is None:
            raise RunNotFoundError(run_id, self.location)
        return record

    def find_runs(self, text: str) -> list[RunRecord]:
        with self._translate_errors():
            return _runs.find_runs(self._conn(), text)

    def count_runs(self, project: str | None = None) -> int:
        with self._translate_errors():
            return _runs.count_runs(self._conn(), project)

    def list_runs(self, query: RunQuery = RunQuery()) -> list[RunRecord]:
        with self._translate_errors():
            return _runs.list_runs(self._conn(), query)

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its rows in every table, its idempotency keys included."""
        with self._transaction() as conn:
            deleted = _runs.delete_run(conn, run_id)
        self._metrics.forget(run_id)
        if not deleted:
            raise RunNotFoundError(run_id, self.location)

    # -- the one write path ----------------------------------------------------------

    def write(self, run_id: str, batch: WriteBatch) -> None:
        """Apply ``batch`` in one transaction; skip it whole if its ``sequence`` was applied before.

        Media files are written before the transaction (a row never lacks its file). A
        batch with media and a sequence is first looked up, so a retry of an applied batch
        does not write its files again over newer ones; the authoritative check is the
        claim of the sequence inside the transaction (see :mod:`._write`).
        """
        if batch.is_empty():
            return
        with no_fork():  # the writer thread calls this; see runpoint._util.forksafe
            if batch.media:
                if batch.sequence is not None and self._batch_applied(run_id, batch.sequence):
                    return
                sqlite_media.write_files(self, run_id, batch.media)  # files first: a row never lacks its file
            try:
                with self._transaction() as conn:
                    _write.apply_batch(conn, self._metrics, run_id, batch)
            except BaseException:
                self._metrics.forget(run_id)  # the transaction rolled back: re-read the tails next time
                raise

    def _batch_applied(self, run_id: str, sequence: int) -> bool:
        with self._translate_errors():
            return _applied.is_applied(self._conn(), run_id, sequence)

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        """Drop the run's metric points with a step above ``after_step``; returns how many.

        Used when a run resumes from a checkpoint: what a killed attempt logged after the
        checkpoint's step is logged again by the resumed one (see :mod:`._truncate`).
        """
        with self._transaction() as conn:
            dropped = _truncate.drop_points_after(conn, run_id, after_step)
            self._metrics.forget(run_id)  # the chunk list changed: re-read the tails on the next write
        return dropped

    # -- reads -----------------------------------------------------------------------

    def read_metric(
        self, run_id: str, key: str, *, min_step: int | None = None, max_step: int | None = None
    ) -> MetricSeries:
        with self._translate_errors():
            series = self._metrics.read(self._conn(), run_id, key, min_step=min_step, max_step=max_step)
        return chunks.within_steps(series, min_step, max_step)

    def metric_keys(self, run_id: str) -> list[str]:
        with self._translate_errors():
            return _reads.metric_keys(self._conn(), run_id)

    def metric_stats(self, run_id: str, keys: Sequence[str] | None = None) -> dict[str, MetricStats]:
        with self._translate_errors():
            return _reads.metric_stats(self._conn(), run_id, keys)

    def get_params(self, run_id: str) -> dict[str, Any]:
        with self._translate_errors():
            return _reads.json_values(self._conn(), "params", run_id)

    def get_summary(self, run_id: str) -> dict[str, Any]:
        with self._translate_errors():
            return _reads.json_values(self._conn(), "summary", run_id)

    def get_meta(self, run_id: str) -> dict[str, Any]:
        with self._translate_errors():
            meta = _reads.meta(self._conn(), run_id)
        if meta is None:
            raise RunNotFoundError(run_id, self.location)
        return meta


def _switch_to_wal(conn: sqlite3.Connection, wait_s: float = BUSY_TIMEOUT_S) -> None:
    """Put a database in WAL mode; waits while another process does (the ranks of a job opening a new root).

    Changing the journal mode of a database that another connection is changing answers
    "database is locked" at once, without SQLite's busy handler: retry for a while.
    """
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
