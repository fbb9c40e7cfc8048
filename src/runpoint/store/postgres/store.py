"""The PostgreSQL store: the :class:`~runpoint.store.base.Store` of a team's shared database.

The same semantics as the embedded :class:`~runpoint.store.sqlite.SQLiteStore`, table for
table and statement for statement (see :mod:`.schema` for the schema and why it is plain
versioned SQL over psycopg 3): a write is one transaction, a batch with a sequence is
applied once per run, status changes are compare-and-set in one statement, metric points
are packed chunks (``bytea``) with per-chunk stats. It is its own
:class:`~runpoint.store.base.CheckpointRegistry`,
:class:`~runpoint.store.base.MediaStore`, :class:`~runpoint.store.base.ModelRegistry`
(:mod:`.models`) and :class:`~runpoint.store.base.AlertStore`. Connections are per thread and never cross a
fork (:mod:`._connections`); the SQL lives in the private modules beside this one.

Example::

    store = open_store("postgresql://runpoint@db.example:5432/runpoint")
    for run in store.list_runs(RunQuery(project="digits")):
        print(run.id, run.status)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import psycopg

from ...errors import RunExistsError, RunNotFoundError, RunpointError, StoreError
from .. import chunks
from ..base import (
    AlertRecord,
    CheckpointRecord,
    MediaKey,
    MediaRecord,
    MetricSeries,
    MetricStats,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from ..encoding import to_json
from . import _metrics, _ranks, _reads, _runs, _write, alerts, checkpoints, media
from ._connections import PostgresConnections
from .models import PostgresModelRegistry
from .schema import ensure_schema


class PostgresStore(PostgresConnections, PostgresModelRegistry):
    """A :class:`~runpoint.store.base.Store` over one PostgreSQL database (its ``search_path`` schema).

    ``dsn`` is a libpq URI or connection string; the schema is created or migrated on open.

    Example::

        store = PostgresStore("postgresql://runpoint@127.0.0.1:5432/runpoint")
        store.write(run_id, WriteBatch(metrics={"loss": series}, sequence=7))  # once, however often sent
    """

    def __init__(self, dsn: str, *, create: bool = True) -> None:
        super().__init__(dsn)
        with self._reading() as conn:
            if not create and _reads.schema_missing(conn):
                raise StoreError(f"no runpoint store at {self.location} (the database has no runpoint schema)",
                                 self.location)
            ensure_schema(conn, self.location)

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r})"

    # -- runs ------------------------------------------------------------------------

    def create_run(
        self, run: RunRecord, params: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        try:
            with self._transaction() as conn:
                _runs.insert_run(conn, run, params or {}, meta)
        except StoreError as exc:
            if isinstance(exc.__cause__, psycopg.errors.UniqueViolation):
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
        self, run_id: str, status: RunStatus, *, error: str | None = None, ended_at: float | None = None,
        expect: Sequence[RunStatus] | None = None, heartbeat_before: float | None = None,
    ) -> bool:
        """Move a run to ``status``; with ``expect``/``heartbeat_before`` a compare-and-set in one statement."""
        with self._transaction() as conn:
            return _runs.set_status(conn, run_id, status, error=error, ended_at=ended_at, expect=expect,
                                    heartbeat_before=heartbeat_before)

    def register_rank(self, record: RankRecord, *, reset: bool = False) -> None:
        with self._transaction() as conn:
            _ranks.register(conn, record, reset)

    def list_ranks(self, run_id: str) -> list[RankRecord]:
        with self._reading() as conn:
            return _ranks.select(conn, run_id)

    def set_rank_status(
        self, run_id: str, rank: int, status: RunStatus, *, error: str | None = None, ended_at: float | None = None
    ) -> None:
        with self._transaction() as conn:
            _ranks.set_status(conn, run_id, rank, status, error, ended_at)

    def set_meta(self, run_id: str, meta: Mapping[str, Any]) -> None:
        with self._transaction() as conn:
            conn.execute("UPDATE runs SET meta = %s WHERE id = %s", (to_json(dict(meta)), run_id))

    def get_run(self, run_id: str) -> RunRecord:
        with self._reading() as conn:
            record = _runs.select_run(conn, run_id)
        if record is None:
            raise RunNotFoundError(run_id, self.location)
        return record

    def find_runs(self, text: str) -> list[RunRecord]:
        with self._reading() as conn:
            return _runs.find_runs(conn, text)

    def count_runs(self, project: str | None = None) -> int:
        with self._reading() as conn:
            return _runs.count_runs(conn, project)

    def status_counts(self, project: str | None = None) -> dict[str, dict[str, int]]:
        """``{project: {status: runs}}`` in one query (of ``project`` alone when given); the bulk reader uses it."""
        with self._reading() as conn:
            return _runs.status_counts(conn, project)

    def list_runs(self, query: RunQuery = RunQuery()) -> list[RunRecord]:
        with self._reading() as conn:
            return _runs.list_runs(conn, query)

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its rows in every table, its idempotency keys included."""
        with self._transaction() as conn:
            deleted = _runs.delete_run(conn, run_id)
        if not deleted:
            raise RunNotFoundError(run_id, self.location)

    # -- the one write path ----------------------------------------------------------

    def write(self, run_id: str, batch: WriteBatch) -> None:
        """Apply ``batch`` in one transaction; skip it whole if its ``sequence`` was applied before."""
        if batch.is_empty():
            return
        with self._transaction() as conn:  # no fork() meanwhile: see runpoint._util.forksafe
            _write.apply_batch(conn, run_id, batch, self.location)

    def batch_applied(self, run_id: str, sequence: int) -> bool:
        """True if a batch of ``run_id`` with this sequence has been applied."""
        with self._reading() as conn:
            return _write.is_applied(conn, run_id, sequence)

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        """Drop the run's metric points with a step above ``after_step``; returns how many."""
        with self._transaction() as conn:
            _write.lock_run(conn, run_id, self.location)
            return _metrics.drop_points_after(conn, run_id, after_step)

    # -- reads -----------------------------------------------------------------------

    def read_metric(
        self, run_id: str, key: str, *, min_step: int | None = None, max_step: int | None = None
    ) -> MetricSeries:
        with self._reading() as conn:
            series = _metrics.read(conn, run_id, key, min_step=min_step, max_step=max_step)
        return chunks.within_steps(series, min_step, max_step)

    def metric_keys(self, run_id: str) -> list[str]:
        with self._reading() as conn:
            return _reads.metric_keys(conn, run_id)

    def metric_stats(self, run_id: str, keys: Sequence[str] | None = None) -> dict[str, MetricStats]:
        with self._reading() as conn:
            return _reads.metric_stats(conn, run_id, keys)

    def get_params(self, run_id: str) -> dict[str, Any]:
        with self._reading() as conn:
            return _reads.json_values(conn, "params", run_id)

    def get_summary(self, run_id: str) -> dict[str, Any]:
        with self._reading() as conn:
            return _reads.json_values(conn, "summary", run_id)

    def get_meta(self, run_id: str) -> dict[str, Any]:
        with self._reading() as conn:
            meta = _reads.meta(conn, run_id)
        if meta is None:
            raise RunNotFoundError(run_id, self.location)
        return meta

    # -- media (MediaStore) ----------------------------------------------------------

    def media_keys(self, run_id: str) -> list[MediaKey]:
        with self._reading() as conn:
            return media.media_keys(conn, run_id)

    def read_media(
        self, run_id: str, key: str, *, step: int | None = None,
        min_step: int | None = None, max_step: int | None = None,
    ) -> list[MediaRecord]:
        with self._reading() as conn:
            return media.read_media(conn, run_id, key, step, min_step, max_step)

    def read_media_file(self, run_id: str, key: str, step: int) -> bytes | None:
        """The bytes of the file of one media record (an image's PNG), None if it has none."""
        with self._reading() as conn:
            return media.read_file(conn, run_id, key, step)

    # -- the checkpoint registry (CheckpointRegistry) --------------------------------

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        with self._transaction() as conn:
            checkpoints.add(conn, record)

    def mark_checkpoint_deleted(self, run_id: str, step: int, deleted_at: float) -> None:
        with self._transaction() as conn:
            checkpoints.mark_deleted(conn, run_id, step, deleted_at)

    def set_best_checkpoint(self, run_id: str, step: int | None) -> None:
        with self._transaction() as conn:
            checkpoints.set_best(conn, run_id, step)

    def list_checkpoints(self, run_id: str, *, include_deleted: bool = False) -> list[CheckpointRecord]:
        with self._reading() as conn:
            return checkpoints.select(conn, run_id, include_deleted)

    # -- alerts (AlertStore) ---------------------------------------------------------

    def read_alerts(self, run_id: str, *, after_id: int = 0, limit: int | None = None) -> list[AlertRecord]:
        with self._reading() as conn:
            return alerts.select(conn, run_id, after_id, limit)

    def alert_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        with self._reading() as conn:
            return alerts.counts(conn, run_ids)
