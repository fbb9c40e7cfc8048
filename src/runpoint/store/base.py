"""The store contract: the :class:`Store` protocol and its companions.

A store is the index of a root: which runs exist, their params, tags, status, metric
points and summaries. It is deliberately narrow. Every write of a running run funnels into
:meth:`Store.write` with a :class:`WriteBatch` (metrics, params, tags, summary, heartbeat),
the way MLflow's stores funnel ``log_metric`` into ``log_batch``; the rest is run
creation, status changes and reads. A second concern (the checkpoint registry) gets a
protocol of its own rather than more methods here.

Backends are picked by URI in :mod:`runpoint.store.registry`.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from .model_records import AliasEvent, AliasRecord, ModelRecord, ModelVersionRecord
from .records import (
    AlertRecord,
    CheckpointRecord,
    Condition,
    ConditionScope,
    MediaKey,
    MediaKind,
    MediaRecord,
    MetricSeries,
    MetricStats,
    Operator,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
    nan_aware_extremes,
)

__all__ = [
    "AlertRecord",
    "AlertStore",
    "AliasEvent",
    "AliasRecord",
    "CheckpointRecord",
    "CheckpointRegistry",
    "Condition",
    "ConditionScope",
    "MediaKey",
    "MediaKind",
    "MediaRecord",
    "MediaStore",
    "MetricSeries",
    "MetricStats",
    "ModelRecord",
    "ModelRegistry",
    "ModelVersionRecord",
    "Operator",
    "RankRecord",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "Store",
    "WriteBatch",
    "nan_aware_extremes",
]


@runtime_checkable
class Store(Protocol):
    """The index of runs, params, tags, metrics and summaries of one root."""

    location: str

    def create_run(
        self, run: RunRecord, params: Mapping[str, Any] | None = None, meta: Mapping[str, Any] | None = None
    ) -> None:
        """Insert a new run; raise :class:`~runpoint.errors.RunExistsError` if the id exists."""

    def write(self, run_id: str, batch: WriteBatch) -> None:
        """Apply one batch atomically: all of it is visible to readers, or none."""

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
        """Move a run to ``status``; True if it changed.

        With ``expect`` only from one of those statuses, and with ``heartbeat_before`` only
        if the run's heartbeat is older: a compare-and-set in one statement.
        """

    def reopen_run(self, run_id: str, *, host: str, pid: int, now: float) -> RunRecord:
        """Mark a finished run running again for a resume; returns it with resume_count + 1.

        Atomic: of several processes resuming one run, one wins and the others get
        :class:`~runpoint.errors.RunpointError` (the run is running already).
        """

    def register_rank(self, record: RankRecord, *, reset: bool = False) -> None:
        """Insert or replace the row of one rank of a multi-rank run.

        With ``reset`` the run's other rank rows go first (rank 0 starting a new attempt).
        """

    def list_ranks(self, run_id: str) -> list[RankRecord]:
        """The rank rows of a run, by rank; empty for a single-process run."""

    def set_rank_status(
        self, run_id: str, rank: int, status: RunStatus, *, error: str | None = None, ended_at: float | None = None
    ) -> None:
        """Record how one rank ended (its own outcome; the run's status is set apart)."""

    def get_run(self, run_id: str) -> RunRecord:
        """The run with exactly this id; :class:`~runpoint.errors.RunNotFoundError` if none."""

    def find_runs(self, text: str) -> list[RunRecord]:
        """Runs whose id starts with ``text`` or whose name is ``text``."""

    def list_runs(self, query: RunQuery = RunQuery()) -> list[RunRecord]:
        """Runs matching ``query``, newest first unless it says otherwise."""

    def count_runs(self, project: str | None = None) -> int:
        """How many runs the store holds (in ``project``, when given)."""

    def get_params(self, run_id: str) -> dict[str, Any]:
        """The flattened config of a run, secrets already masked."""

    def get_meta(self, run_id: str) -> dict[str, Any]:
        """The metadata captured when the run started."""

    def get_summary(self, run_id: str) -> dict[str, Any]:
        """Values the user set on ``run.summary``."""

    def metric_keys(self, run_id: str) -> list[str]:
        """Every metric key the run has logged, sorted."""

    def metric_stats(self, run_id: str, keys: Sequence[str] | None = None) -> dict[str, MetricStats]:
        """Count, last, min and max of each metric (all of them when ``keys`` is None)."""

    def read_metric(
        self, run_id: str, key: str, *, min_step: int | None = None, max_step: int | None = None
    ) -> MetricSeries:
        """Every point of one metric in the order it was logged, optionally within steps."""

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        """Drop the run's metric points with a step above ``after_step``; returns how many.

        A run resumed from a checkpoint calls this so that what the killed attempt logged
        after the checkpoint's step is not shown twice; stats are recomputed.
        """

    def delete_run(self, run_id: str) -> None:
        """Remove a run and everything the store holds about it."""

    def close(self) -> None:
        """Release connections; the store must not be used afterwards."""


@runtime_checkable
class MediaStore(Protocol):
    """The read side of logged media; writes arrive through :meth:`Store.write`."""

    def media_keys(self, run_id: str) -> list[MediaKey]:
        """Every media key the run has logged, sorted."""

    def read_media(
        self, run_id: str, key: str, *, step: int | None = None,
        min_step: int | None = None, max_step: int | None = None,
    ) -> list[MediaRecord]:
        """The records of one key in step order: one ``step``, or those within the bounds."""


@runtime_checkable
class CheckpointRegistry(Protocol):
    """Which checkpoints each run saved: the index ``runpoint ckpt ls`` reads.

    A protocol of its own beside :class:`Store`: checkpoints are a second concern.
    The files are the truth; the registry is an index kept up to date by the manager.
    """

    def add_checkpoint(self, record: CheckpointRecord) -> None:
        """Insert a checkpoint, replacing one of the same run and step."""

    def mark_checkpoint_deleted(self, run_id: str, step: int, deleted_at: float) -> None:
        """Record that retention removed the files of a checkpoint."""

    def set_best_checkpoint(self, run_id: str, step: int | None) -> None:
        """Flag ``step`` as the run's best checkpoint (None: no best) and unflag the rest."""

    def list_checkpoints(self, run_id: str, *, include_deleted: bool = False) -> list[CheckpointRecord]:
        """A run's checkpoints by step; those removed by retention only when asked."""


@runtime_checkable
class ModelRegistry(Protocol):
    """Registered models: versions pointing at checkpoints, with lineage, and aliases that move.

    The concern of ``runpoint models`` and ``rp.register_model`` (:mod:`runpoint.models`,
    which checks the checkpoint and builds the lineage); the records are in
    :mod:`runpoint.store.model_records`. Implemented by the SQLite registry
    (:func:`runpoint.store.model_registry`), :class:`~runpoint.store.postgres.PostgresStore`
    and :class:`~runpoint.remote.HttpStore`. Names and aliases are checked by every backend
    (:func:`~runpoint.store.model_records.check_model_name`); unknown models, versions and
    aliases raise :class:`~runpoint.errors.ModelNotFoundError` naming what exists.

    Example::

        registry = model_registry(store)
        v = registry.register_version(ModelVersionRecord("digits", 0, "checkpoints/step-000400", 0.0,
                                                         run_id=run.id, step=400), project="vision")
        registry.move_alias("digits", "champion", v.version, expected=0, by="ana")  # 0: "it names nothing yet"
    """

    def register_version(self, version: ModelVersionRecord, *, project: str) -> ModelVersionRecord:
        """Add a version of ``version.name`` (created in ``project`` if new), numbered 1, 2, ... atomically.

        The given ``version`` and ``registered_at`` are ignored: the registry numbers and
        stamps it. InvalidArgumentError when the model exists in another project.
        """

    def get_model(self, name: str) -> ModelRecord:
        """The model called ``name``; ModelNotFoundError naming the models there are."""

    def list_models(self, project: str | None = None) -> list[ModelRecord]:
        """The models (of ``project``, else all), by name."""

    def get_version(self, name: str, version: int, *, include_deleted: bool = False) -> ModelVersionRecord:
        """One version; ModelNotFoundError (naming the versions there are) when it is missing or deleted."""

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersionRecord]:
        """The model's versions, oldest first; ModelNotFoundError for an unknown model."""

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: Sequence[str] | None = None) -> ModelVersionRecord:
        """Replace the description and/or tags (None: unchanged) of a live version; the updated record."""

    def repin_version(self, name: str, version: int, *, old_hash: str, new_hash: str, by: str | None = None,
                      why: str = "rekey") -> ModelVersionRecord:
        """Point a live version at its checkpoint's new manifest hash (the checkpoint was rewritten, e.g. rekeyed).

        A compare-and-set: applied only if the version pins ``old_hash`` now, and recorded in
        its lineage (``lineage["repinned"]``: from, to, at, by, why); a version that pins
        ``new_hash`` already is returned as it is; one that pins anything else raises
        PinConflictError, unchanged.
        """

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> ModelVersionRecord:
        """Soft-delete a version (its number is never reused); aliases naming it are removed (as events)."""

    def list_aliases(self, name: str) -> list[AliasRecord]:
        """Where the model's aliases point now, by alias."""

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None = None,
                   by: str | None = None) -> AliasEvent:
        """Point ``alias`` at ``version`` (None: remove it), atomically; the event recorded.

        With ``expected`` it is a compare-and-set: applied only if the alias names version
        ``expected`` now (``0``: names nothing); otherwise the attempt is recorded as a
        ``conflict`` event and AliasConflictError is raised. ModelNotFoundError for an
        unknown model or version, or when removing an alias that does not exist.
        """

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Every move, removal and conflict of the model's aliases (or of one), oldest first."""

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        """The versions (not deleted) registered from ``run_id``'s checkpoints: they protect those checkpoints."""


@runtime_checkable
class AlertStore(Protocol):
    """The read side of a run's alerts; they are written through :meth:`Store.write` (``WriteBatch.alerts``)."""

    def read_alerts(self, run_id: str, *, after_id: int = 0, limit: int | None = None) -> list[AlertRecord]:
        """The run's alerts with ``id > after_id``, oldest first."""

    def alert_counts(self, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """For each run that has alerts: level -> how many."""
