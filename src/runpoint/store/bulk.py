"""Reads a dashboard makes in bulk, as a second protocol beside :class:`~runpoint.store.base.Store`.

A runs table of a thousand runs with a few picked columns would cost thousands of
per-run calls through the :class:`Store` protocol; a chart of a million points wants the
per-chunk extremes that the SQLite backend keeps beside its blobs instead of every point.
:class:`BulkReader` is that narrow read contract. :func:`bulk_reader` returns the SQLite
implementation (:mod:`runpoint.store.sqlite.bulk`) for a :class:`SQLiteStore` and a
generic one, built from the :class:`Store` calls, for any other backend.

Example::

    reader = bulk_reader(store)
    values = reader.column_values(["3fa2c1d0", "9b1e22aa"], ["params.training.lr", "metrics.val/acc"])
    index = reader.chunk_index("3fa2c1d0", "train/loss")     # no point is read
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from .base import MediaStore, MetricSeries, RunQuery, Store, nan_aware_extremes

COLUMN_SCOPES = ("params", "metrics", "summary")


@dataclass(frozen=True)
class ChunkSummary:
    """One stored chunk of a metric, without its points: what downsampling may skip reading."""

    seq: int
    n: int
    step_min: int
    step_max: int
    vmin: float | None  # None when every value in the chunk is NaN
    vmax: float | None
    t_min: float
    t_max: float


def split_column(column: str) -> tuple[str, str]:
    """``"params.training.lr"`` -> ``("params", "training.lr")``; ``config.`` means ``params.``."""
    scope, _, key = column.partition(".")
    if scope == "config":
        scope = "params"
    if scope not in COLUMN_SCOPES or not key:
        raise ValueError(f"column {column!r} must be params.<key>, metrics.<key> or summary.<key>")
    return scope, key


class BulkReader(Protocol):
    """Reads over many runs at once, and chunk-level reads of one metric."""

    def projects(self) -> dict[str, int]:
        """Every project with its number of runs."""

    def status_counts(self, project: str | None = None) -> dict[str, dict[str, int]]:
        """``{project: {status: runs}}`` (of ``project`` alone when given); statuses without runs are left out."""

    def column_keys(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        """The param, metric and summary keys any of ``run_ids`` has, per scope, sorted."""

    def column_values(self, run_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{run_id: {column: value}}``; metrics give their last value, absent cells are left out."""

    def chunk_index(self, run_id: str, key: str) -> list[ChunkSummary]:
        """The chunks of one metric in logged order, without their points."""

    def read_chunks(self, run_id: str, key: str, seqs: Sequence[int]) -> MetricSeries:
        """The points of the chunks ``seqs`` of one metric, in logged order."""

    def read_xy(self, run_id: str, key: str, seqs: Sequence[int], x: str) -> tuple[array, array]:
        """Only x (``"steps"`` int64 or ``"times"`` float64) and values of the chunks ``seqs``."""

    def checkpoint_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's rows of the checkpoint registry, by step."""

    def media_rows(self, run_id: str) -> list[dict[str, Any]]:
        """The run's logged media (images, histograms, text, tables), by key and step."""


class GenericBulkReader:
    """:class:`BulkReader` over any :class:`Store`: one call per run, one 'chunk' per metric."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def projects(self) -> dict[str, int]:
        counts = Counter(run.project for run in self.store.list_runs())
        return dict(sorted(counts.items()))

    def status_counts(self, project: str | None = None) -> dict[str, dict[str, int]]:
        own = getattr(self.store, "status_counts", None)  # a backend that counts in one query (PostgreSQL)
        if own is not None:
            return dict(own(project))
        result: dict[str, dict[str, int]] = {}
        for run in self.store.list_runs(RunQuery(project=project)):
            by_status = result.setdefault(run.project, {})
            by_status[run.status.value] = by_status.get(run.status.value, 0) + 1
        return result

    def column_keys(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        keys: dict[str, set[str]] = {scope: set() for scope in COLUMN_SCOPES}
        for run_id in run_ids:
            keys["params"].update(self.store.get_params(run_id))
            keys["metrics"].update(self.store.metric_keys(run_id))
            keys["summary"].update(self.store.get_summary(run_id))
        return {scope: sorted(found) for scope, found in keys.items()}

    def column_values(self, run_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = [(column, *split_column(column)) for column in columns]
        result: dict[str, dict[str, Any]] = {}
        for run_id in run_ids:
            sources: dict[str, dict[str, Any]] = {}
            scopes = {scope for _, scope, _ in wanted}
            if "params" in scopes:
                sources["params"] = self.store.get_params(run_id)
            if "metrics" in scopes:
                sources["metrics"] = {k: s.last for k, s in self.store.metric_stats(run_id).items()}
            if "summary" in scopes:
                sources["summary"] = self.store.get_summary(run_id)
            row = {column: sources[scope][key] for column, scope, key in wanted if key in sources[scope]}
            result[run_id] = row
        return result

    def chunk_index(self, run_id: str, key: str) -> list[ChunkSummary]:
        series = self.store.read_metric(run_id, key)
        if not len(series):
            return []
        lo, hi = nan_aware_extremes(series.values)
        return [
            ChunkSummary(
                seq=0, n=len(series), step_min=min(series.steps), step_max=max(series.steps),
                vmin=None if lo is None else series.values[lo], vmax=None if hi is None else series.values[hi],
                t_min=min(series.times), t_max=max(series.times),
            )
        ]

    def read_chunks(self, run_id: str, key: str, seqs: Sequence[int]) -> MetricSeries:
        if 0 not in seqs:
            return MetricSeries(array("q"), array("d"), array("d"))
        return self.store.read_metric(run_id, key)

    def read_xy(self, run_id: str, key: str, seqs: Sequence[int], x: str) -> tuple[array, array]:
        series = self.read_chunks(run_id, key, seqs)
        return (series.steps if x == "steps" else series.times), series.values

    def checkpoint_rows(self, run_id: str) -> list[dict[str, Any]]:
        from .registry import checkpoint_registry

        registry = checkpoint_registry(self.store)
        if registry is None:  # a backend without a checkpoint registry
            return []
        fields = ("step", "path", "bytes", "metrics", "is_best", "hash", "created_at", "deleted_at")
        return [{name: getattr(record, name) for name in fields}
                for record in registry.list_checkpoints(run_id, include_deleted=True)]

    def media_rows(self, run_id: str) -> list[dict[str, Any]]:
        if not isinstance(self.store, MediaStore):
            return []
        return [{"key": r.key, "step": r.step, "kind": r.kind, "path": r.path, "data": r.data or None, "time": r.time}
                for key in self.store.media_keys(run_id) for r in self.store.read_media(run_id, key.key)]


def bulk_reader(store: Store) -> BulkReader:
    """The fastest :class:`BulkReader` for ``store``."""
    from .sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.bulk import SQLiteBulkReader

        return SQLiteBulkReader(store)
    return GenericBulkReader(store)
