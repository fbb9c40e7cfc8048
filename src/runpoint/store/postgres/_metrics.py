"""A run's metric points in PostgreSQL: the SQLite store's packed chunks and running aggregates, as ``bytea``.

:mod:`runpoint.store.chunks` decides how points are packed and when small chunks merge.
Unlike the SQLite store, which remembers each key's tail between writes (SQLite lets one
writer at a time in), this one reads the tails of a batch's keys in its transaction
(one query for all keys), after taking the run's row lock: several processes and server
workers may write to one run at once, and each must see the chunks the others committed.
Rows go in with one pipelined ``executemany``; a batch's stats with another.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from .. import chunks
from ..base import MetricSeries, nan_aware_extremes
from ._connections import Connection

_INSERT_CHUNK = (
    "INSERT INTO metric_chunks (run_id, key, seq, n, step_min, step_max, vmin, vmax, t_min, t_max, steps, vals, times)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)

# The rows of a batch hold its new points (plus, after a merge, older points that are already
# counted and cannot beat the stored extremes), so their extremes are the batch's.
_UPSERT_STATS = """
INSERT INTO metric_stats AS m (run_id, key, count, vlast, last_step, last_time, vmin, min_step, vmax, max_step)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (run_id, key) DO UPDATE SET
    count = m.count + excluded.count,
    vlast = excluded.vlast, last_step = excluded.last_step, last_time = excluded.last_time,
    min_step = CASE WHEN excluded.vmin IS NOT NULL AND (m.vmin IS NULL OR excluded.vmin < m.vmin)
                    THEN excluded.min_step ELSE m.min_step END,
    vmin = CASE WHEN excluded.vmin IS NOT NULL AND (m.vmin IS NULL OR excluded.vmin < m.vmin)
                THEN excluded.vmin ELSE m.vmin END,
    max_step = CASE WHEN excluded.vmax IS NOT NULL AND (m.vmax IS NULL OR excluded.vmax > m.vmax)
                    THEN excluded.max_step ELSE m.max_step END,
    vmax = CASE WHEN excluded.vmax IS NOT NULL AND (m.vmax IS NULL OR excluded.vmax > m.vmax)
                THEN excluded.vmax ELSE m.vmax END
"""


def nan_to_null(value: float) -> float | None:
    """NaN is kept as NULL, as in the SQLite store (PostgreSQL's NaN would compare greater than every number)."""
    return None if math.isnan(value) else value


def _tails(conn: Connection, run_id: str, keys: list[str]) -> dict[str, chunks.KeyTail]:
    rows = conn.execute(
        "SELECT k.key, c.seq, c.n FROM unnest(%s::text[]) AS k(key) CROSS JOIN LATERAL"
        " (SELECT seq, n FROM metric_chunks WHERE run_id = %s AND key = k.key ORDER BY seq DESC LIMIT %s) c",
        (keys, run_id, chunks.MERGE_AFTER),
    ).fetchall()
    tails = {key: chunks.KeyTail() for key in keys}
    full: set[str] = set()
    for row in rows:  # each key's rows, newest first
        tail = tails[row["key"]]
        tail.next_seq = max(tail.next_seq, row["seq"] + 1)
        if row["key"] in full or row["n"] >= chunks.CHUNK_POINTS:
            full.add(row["key"])
            continue
        tail.small.insert(0, (row["seq"], row["n"]))
    return tails


def append(conn: Connection, run_id: str, metrics: dict[str, MetricSeries]) -> None:
    """Append the batch's points of every key, inside the caller's transaction (which holds the run's lock)."""
    metrics = {key: series for key, series in metrics.items() if len(series)}
    if not metrics:
        return
    tails = _tails(conn, run_id, sorted(metrics))
    inserts: list[tuple[Any, ...]] = []
    stats: list[tuple[Any, ...]] = []
    for key, series in metrics.items():
        tail = tails[key]
        if tail.should_merge(len(series)):
            seqs = [seq for seq, _ in tail.small]
            merged = read(conn, run_id, key, seqs)
            merged.extend(series)
            conn.execute("DELETE FROM metric_chunks WHERE run_id = %s AND key = %s AND seq = ANY(%s)",
                         (run_id, key, seqs))
            rows = chunks.to_rows(merged, seqs[0])
        else:
            rows = chunks.to_rows(series, tail.next_seq)
        inserts.extend(
            (run_id, key, r.seq, r.n, r.step_min, r.step_max, r.vmin, r.vmax, r.t_min, r.t_max, r.steps, r.vals,
             r.times)
            for r in rows
        )
        vmin, min_step, vmax, max_step = chunks.extremes_of(rows)
        stats.append((run_id, key, len(series), nan_to_null(series.values[-1]), series.steps[-1], series.times[-1],
                      vmin, min_step, vmax, max_step))
    with conn.cursor() as cursor:
        cursor.executemany(_INSERT_CHUNK, inserts)
        cursor.executemany(_UPSERT_STATS, stats)


def read(
    conn: Connection, run_id: str, key: str, seqs: Sequence[int] | None = None,
    min_step: int | None = None, max_step: int | None = None,
) -> MetricSeries:
    """Points of whole chunks, in logged order: all, some seqs, or chunks touching a step range."""
    sql = "SELECT steps, vals, times FROM metric_chunks WHERE run_id = %s AND key = %s"
    args: list[Any] = [run_id, key]
    if seqs is not None:
        sql += " AND seq = ANY(%s)"
        args.append(list(seqs))
    if min_step is not None:
        sql += " AND step_max >= %s"
        args.append(min_step)
    if max_step is not None:
        sql += " AND step_min <= %s"
        args.append(max_step)
    series = MetricSeries()
    blobs: dict[str, list[bytes]] = {"steps": [], "vals": [], "times": []}
    for row in conn.execute(sql + " ORDER BY seq", args, binary=True):
        for column, parts in blobs.items():
            parts.append(row[column])
    chunks.unpack_into(series.steps, b"".join(blobs["steps"]))  # one copy instead of one per chunk
    chunks.unpack_into(series.values, b"".join(blobs["vals"]))
    chunks.unpack_into(series.times, b"".join(blobs["times"]))
    return series


def drop_points_after(conn: Connection, run_id: str, step: int) -> int:
    """Delete the run's points with a step above ``step`` (the SQLite store's rewind); returns how many went.

    Chunks wholly after the step are deleted, chunks straddling it rewritten with the
    points they keep, stats of each affected key recomputed, media rows after it dropped.
    """
    rows = conn.execute(
        "SELECT key, seq, n, step_min, steps, vals, times FROM metric_chunks WHERE run_id = %s AND step_max > %s",
        (run_id, step), binary=True,
    ).fetchall()
    dropped = 0
    for row in rows:
        if row["step_min"] > step:
            conn.execute("DELETE FROM metric_chunks WHERE run_id = %s AND key = %s AND seq = %s",
                         (run_id, row["key"], row["seq"]))
            dropped += row["n"]
            continue
        chunk = MetricSeries()
        chunks.unpack_into(chunk.steps, row["steps"])
        chunks.unpack_into(chunk.values, row["vals"])
        chunks.unpack_into(chunk.times, row["times"])
        kept = MetricSeries()
        for point_step, value, at in chunk.points():
            if point_step <= step:
                kept.append(point_step, value, at)
        dropped += row["n"] - len(kept)
        (new,) = chunks.to_rows(kept, row["seq"])  # kept has at least the point at step_min <= step
        conn.execute(
            "UPDATE metric_chunks SET n = %s, step_min = %s, step_max = %s, vmin = %s, vmax = %s, t_min = %s,"
            " t_max = %s, steps = %s, vals = %s, times = %s WHERE run_id = %s AND key = %s AND seq = %s",
            (new.n, new.step_min, new.step_max, new.vmin, new.vmax, new.t_min, new.t_max, new.steps, new.vals,
             new.times, run_id, row["key"], row["seq"]),
        )
    for key in sorted({row["key"] for row in rows}):
        _recompute_stats(conn, run_id, key)
    conn.execute("DELETE FROM media WHERE run_id = %s AND step > %s", (run_id, step))
    return dropped


def _recompute_stats(conn: Connection, run_id: str, key: str) -> None:
    series = read(conn, run_id, key)
    conn.execute("DELETE FROM metric_stats WHERE run_id = %s AND key = %s", (run_id, key))
    if not len(series):
        return
    lo, hi = nan_aware_extremes(series.values)
    conn.execute(
        "INSERT INTO metric_stats (run_id, key, count, vlast, last_step, last_time, vmin, min_step, vmax, max_step)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (run_id, key, len(series), nan_to_null(series.values[-1]), series.steps[-1], series.times[-1],
         None if lo is None else series.values[lo], None if lo is None else series.steps[lo],
         None if hi is None else series.values[hi], None if hi is None else series.steps[hi]),
    )
