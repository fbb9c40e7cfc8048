"""A run's metric points in SQLite: packed chunks plus running aggregates.

:mod:`._chunks` decides how points are packed and when small chunks merge; this module
does the SQL: appending a key's new points (merging its small trailing chunks), keeping
``metric_stats`` (count, last, min and max with their steps) current, and reading points
back. It remembers the end of each key's chunk list (its "tail") between writes; when a
transaction rolls back the store forgets them, and they are read again from the database.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Sequence

from .. import chunks
from ..base import MetricSeries


class ChunkedMetrics:
    """Appends and reads metric points of one store's runs."""

    def __init__(self) -> None:
        self._tails: dict[tuple[str, str], chunks.KeyTail] = {}

    def forget(self, run_id: str) -> None:
        """Drop the cached tails of a run (its chunk list changed, or it was deleted)."""
        self._tails = {key: tail for key, tail in self._tails.items() if key[0] != run_id}

    def forget_all(self) -> None:
        self._tails = {}

    def _tail(self, conn: sqlite3.Connection, run_id: str, key: str) -> chunks.KeyTail:
        tail = self._tails.get((run_id, key))
        if tail is None:
            rows = conn.execute(
                "SELECT seq, n FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq DESC LIMIT ?",
                (run_id, key, chunks.MERGE_AFTER),
            ).fetchall()
            tail = chunks.KeyTail(next_seq=rows[0]["seq"] + 1 if rows else 0)
            for row in rows:
                if row["n"] >= chunks.CHUNK_POINTS:
                    break
                tail.small.insert(0, (row["seq"], row["n"]))
            self._tails[(run_id, key)] = tail
        return tail

    def append(self, conn: sqlite3.Connection, run_id: str, key: str, series: MetricSeries) -> None:
        tail = self._tail(conn, run_id, key)
        if tail.should_merge(len(series)):
            seqs = [seq for seq, _ in tail.small]
            merged = self.read(conn, run_id, key, seqs)
            merged.extend(series)
            conn.execute(
                f"DELETE FROM metric_chunks WHERE run_id = ? AND key = ? AND seq IN ({','.join('?' * len(seqs))})",
                (run_id, key, *seqs),
            )
            tail.small.clear()
            rows = chunks.to_rows(merged, seqs[0])
        else:
            rows = chunks.to_rows(series, tail.next_seq)
        conn.executemany(
            "INSERT INTO metric_chunks (run_id, key, seq, n, step_min, step_max, vmin, vmax, t_min, t_max,"
            " steps, vals, times) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (run_id, key, r.seq, r.n, r.step_min, r.step_max, r.vmin, r.vmax, r.t_min, r.t_max,
                 r.steps, r.vals, r.times)
                for r in rows
            ],
        )
        tail.after_write(rows)
        self._update_stats(conn, run_id, key, series, rows)

    def _update_stats(
        self, conn: sqlite3.Connection, run_id: str, key: str, series: MetricSeries, rows: list[chunks.ChunkRow]
    ) -> None:
        # The rows hold the new points (plus, after a merge, older points that are already
        # counted and cannot beat the stored extremes), so their extremes are the batch's.
        vmin, min_step, vmax, max_step = chunks.extremes_of(rows)
        conn.execute(
            """
            INSERT INTO metric_stats (run_id, key, count, vlast, last_step, last_time, vmin, min_step, vmax, max_step)
            VALUES (:run, :key, :count, :last, :last_step, :last_time, :vmin, :min_step, :vmax, :max_step)
            ON CONFLICT (run_id, key) DO UPDATE SET
                count = count + excluded.count,
                vlast = excluded.vlast, last_step = excluded.last_step, last_time = excluded.last_time,
                min_step = CASE WHEN excluded.vmin IS NOT NULL AND (vmin IS NULL OR excluded.vmin < vmin)
                                THEN excluded.min_step ELSE min_step END,
                vmin = CASE WHEN excluded.vmin IS NOT NULL AND (vmin IS NULL OR excluded.vmin < vmin)
                            THEN excluded.vmin ELSE vmin END,
                max_step = CASE WHEN excluded.vmax IS NOT NULL AND (vmax IS NULL OR excluded.vmax > vmax)
                                THEN excluded.max_step ELSE max_step END,
                vmax = CASE WHEN excluded.vmax IS NOT NULL AND (vmax IS NULL OR excluded.vmax > vmax)
                            THEN excluded.vmax ELSE vmax END
            """,
            {
                "run": run_id, "key": key, "count": len(series),
                "last": series.values[-1], "last_step": series.steps[-1], "last_time": series.times[-1],
                "vmin": vmin, "min_step": min_step, "vmax": vmax, "max_step": max_step,
            },
        )

    def read(
        self, conn: sqlite3.Connection, run_id: str, key: str, seqs: Sequence[int] | None = None,
        min_step: int | None = None, max_step: int | None = None,
    ) -> MetricSeries:
        """Points of whole chunks, in logged order: all, some seqs, or chunks touching a step range."""
        sql = "SELECT steps, vals, times FROM metric_chunks WHERE run_id = ? AND key = ?"
        args: list[Any] = [run_id, key]
        if seqs is not None:
            sql += f" AND seq IN ({','.join('?' * len(seqs))})"
            args.extend(seqs)
        if min_step is not None:
            sql += " AND step_max >= ?"
            args.append(min_step)
        if max_step is not None:
            sql += " AND step_min <= ?"
            args.append(max_step)
        series = MetricSeries()
        for steps, vals, times in conn.execute(sql + " ORDER BY seq", args):
            chunks.unpack_into(series.steps, steps)
            chunks.unpack_into(series.values, vals)
            chunks.unpack_into(series.times, times)
        return series
