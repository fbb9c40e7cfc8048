"""Dropping a run's metric points after a step, for a resume from a checkpoint.

A run killed at step 730 whose last checkpoint is step 500 has logged 230 steps that the
resumed attempt will log again. Keeping both would draw two lines over the same steps,
so the resume drops every point with a step greater than the checkpoint's: chunks that
lie wholly after it are deleted, chunks that straddle it are rewritten with the points
they keep, and ``metric_stats`` of each affected key is recomputed from what is left.
Media rows logged after the step go too (their files stay; a step logged again
overwrites its file). Everything happens inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from array import array

from .. import chunks
from ..base import MetricSeries, nan_aware_extremes


def drop_points_after(conn: sqlite3.Connection, run_id: str, step: int) -> int:
    """Delete points of ``run_id`` with a step above ``step``; returns how many went."""
    rows = conn.execute(
        "SELECT key, seq, n, step_min, steps, vals, times FROM metric_chunks"
        " WHERE run_id = ? AND step_max > ?",
        (run_id, step),
    ).fetchall()
    dropped = 0
    affected: set[str] = set()
    for key, seq, n, step_min, steps, vals, times in rows:
        affected.add(key)
        if step_min > step:
            conn.execute("DELETE FROM metric_chunks WHERE run_id = ? AND key = ? AND seq = ?", (run_id, key, seq))
            dropped += n
            continue
        chunk = MetricSeries(array("q"), array("d"), array("d"))
        chunks.unpack_into(chunk.steps, steps)
        chunks.unpack_into(chunk.values, vals)
        chunks.unpack_into(chunk.times, times)
        kept = MetricSeries()
        for point_step, value, at in chunk.points():
            if point_step <= step:
                kept.append(point_step, value, at)
        dropped += n - len(kept)
        (row,) = chunks.to_rows(kept, seq)  # kept has at least the point at step_min <= step
        conn.execute(
            "UPDATE metric_chunks SET n = ?, step_min = ?, step_max = ?, vmin = ?, vmax = ?, t_min = ?,"
            " t_max = ?, steps = ?, vals = ?, times = ? WHERE run_id = ? AND key = ? AND seq = ?",
            (row.n, row.step_min, row.step_max, row.vmin, row.vmax, row.t_min, row.t_max,
             row.steps, row.vals, row.times, run_id, key, seq),
        )
    for key in sorted(affected):
        _recompute_stats(conn, run_id, key)
    conn.execute("DELETE FROM media WHERE run_id = ? AND step > ?", (run_id, step))
    return dropped


def _recompute_stats(conn: sqlite3.Connection, run_id: str, key: str) -> None:
    series = MetricSeries()
    for steps, vals, times in conn.execute(
        "SELECT steps, vals, times FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq", (run_id, key)
    ):
        chunks.unpack_into(series.steps, steps)
        chunks.unpack_into(series.values, vals)
        chunks.unpack_into(series.times, times)
    if not len(series):
        conn.execute("DELETE FROM metric_stats WHERE run_id = ? AND key = ?", (run_id, key))
        return
    lo, hi = nan_aware_extremes(series.values)
    conn.execute(
        "INSERT OR REPLACE INTO metric_stats (run_id, key, count, vlast, last_step, last_time, vmin, min_step,"
        " vmax, max_step) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            run_id, key, len(series), series.values[-1], series.steps[-1], series.times[-1],
            None if lo is None else series.values[lo], None if lo is None else series.steps[lo],
            None if hi is None else series.values[hi], None if hi is None else series.steps[hi],
        ),
    )
