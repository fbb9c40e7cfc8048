"""The SQLite implementation of :class:`~runpoint.store.bulk.BulkReader`.

A runs table needs a few columns of a thousand runs: one query per scope over an
``IN (...)`` list of run ids (in batches below SQLite's parameter limit) instead of three
calls per run. The chunk index reads only the small columns of ``metric_chunks``.
"""

from __future__ import annotations

import json
from array import array
from typing import Any, Iterator, Sequence

from .. import chunks
from ..base import MetricSeries
from ..bulk import COLUMN_SCOPES, ChunkSummary, split_column
from .store import SQLiteStore

_BATCH = 500  # run ids per IN (...) list


def _batches(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _BATCH):
        yield items[start:start + _BATCH]


def _marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


class SQLiteBulkReader:
    """Bulk and chunk-level reads of one :class:`SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def projects(self) -> dict[str, int]:
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                "SELECT project, count(*) FROM runs GROUP BY project ORDER BY project"
            ).fetchall()
        return {row[0]: row[1] for row in rows}

    def status_counts(self, project: str | None = None) -> dict[str, dict[str, int]]:
        where, args = (" WHERE project = ?", (project,)) if project is not None else ("", ())
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                f"SELECT project, status, count(*) FROM runs{where} GROUP BY project, status", args
            ).fetchall()
        result: dict[str, dict[str, int]] = {}
        for name, status, count in rows:
            result.setdefault(name, {})[status] = count
        return result

    def column_keys(self, run_ids: Sequence[str]) -> dict[str, list[str]]:
        tables = {"params": "params", "metrics": "metric_stats", "summary": "summary"}
        keys: dict[str, set[str]] = {scope: set() for scope in COLUMN_SCOPES}
        conn = self.store._conn()
        with self.store._translate_errors():
            for batch in _batches(list(run_ids)):
                for scope, table in tables.items():
                    rows = conn.execute(
                        f"SELECT DISTINCT key FROM {table} WHERE run_id IN ({_marks(batch)})", list(batch)
                    ).fetchall()
                    keys[scope].update(row[0] for row in rows)
        return {scope: sorted(found) for scope, found in keys.items()}

    def column_values(self, run_ids: Sequence[str], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
        by_scope: dict[str, dict[str, str]] = {scope: {} for scope in COLUMN_SCOPES}  # key -> column
        for column in columns:
            scope, key = split_column(column)
            by_scope[scope][key] = column
        result: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
        conn = self.store._conn()
        with self.store._translate_errors():
            for batch in _batches(list(run_ids)):
                for scope, wanted in by_scope.items():
                    if not wanted:
                        continue
                    keys = list(wanted)
                    if scope == "metrics":
                        sql = "SELECT run_id, key, vlast FROM metric_stats"
                    else:
                        sql = f"SELECT run_id, key, value FROM {scope}"
                    sql += f" WHERE run_id IN ({_marks(batch)}) AND key IN ({_marks(keys)})"
                    for run_id, key, value in conn.execute(sql, [*batch, *keys]):
                        if scope == "metrics":
                            value = float("nan") if value is None else value  # SQLite keeps NaN as NULL
                        else:
                            value = json.loads(value)
                        result[run_id][wanted[key]] = value
        return result

    def chunk_index(self, run_id: str, key: str) -> list[ChunkSummary]:
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                "SELECT seq, n, step_min, step_max, vmin, vmax, t_min, t_max FROM metric_chunks"
                " WHERE run_id = ? AND key = ? ORDER BY seq",
                (run_id, key),
            ).fetchall()
        return [ChunkSummary(*row) for row in rows]

    def read_chunks(self, run_id: str, key: str, seqs: Sequence[int]) -> MetricSeries:
        if not seqs:
            return MetricSeries()
        with self.store._translate_errors():
            return self.store._metrics.read(self.store._conn(), run_id, key, list(seqs))

    def read_xy(self, run_id: str, key: str, seqs: Sequence[int], x: str) -> tuple[array, array]:
        if x not in {"steps", "times"}:
            raise ValueError(f"x must be 'steps' or 'times', not {x!r}")
        xs, values = array("q" if x == "steps" else "d"), array("d")
        if not seqs:
            return xs, values
        x_blobs, value_blobs = [], []
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                f"SELECT {x}, vals FROM metric_chunks WHERE run_id = ? AND key = ? AND seq IN ({_marks(seqs)})"
                " ORDER BY seq",
                (run_id, key, *seqs),
            )
            for x_blob, value_blob in rows:
                x_blobs.append(x_blob)
                value_blobs.append(value_blob)
        chunks.unpack_into(xs, b"".join(x_blobs))  # one copy instead of one per chunk
        chunks.unpack_into(values, b"".join(value_blobs))
        return xs, values

    def checkpoint_rows(self, run_id: str) -> list[dict[str, Any]]:
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                "SELECT step, path, bytes, metrics, is_best, hash, created_at, deleted_at FROM checkpoints"
                " WHERE run_id = ? ORDER BY step",
                (run_id,),
            ).fetchall()
        return [
            {**dict(row), "metrics": json.loads(row["metrics"]) if row["metrics"] else {}, "is_best": bool(row["is_best"])}
            for row in rows
        ]

    def media_rows(self, run_id: str) -> list[dict[str, Any]]:
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                "SELECT key, step, kind, path, data, time FROM media WHERE run_id = ? ORDER BY key, step",
                (run_id,),
            ).fetchall()
        return [{**dict(row), "data": json.loads(row["data"]) if row["data"] else None} for row in rows]
