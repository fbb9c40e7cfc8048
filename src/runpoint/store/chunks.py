"""Packing metric points into chunks, and deciding when small chunks are merged.

Rows of ``metric_chunks`` hold up to :data:`CHUNK_POINTS` points. Each flush of a writer
appends one new row per key with the points of that flush, which keeps writes append-only
and cheap. Slowly logged keys would then leave thousands of tiny rows, so once a key's
trailing small rows number :data:`MERGE_AFTER`, or together with new points would fill a
chunk, they are merged with the new points and re-split into full chunks. Every point is
written about twice on average, and a key's row count stays near ``points / CHUNK_POINTS``.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass, field

from .base import MetricSeries, nan_aware_extremes

CHUNK_POINTS = 4096
MERGE_AFTER = 16

_LITTLE = sys.byteorder == "little"


def pack(values: array) -> bytes:
    """The array's items as little-endian bytes."""
    if _LITTLE:
        return values.tobytes()
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped.tobytes()


def unpack_into(target: array, blob: bytes) -> None:
    """Append little-endian ``blob`` to ``target``."""
    if _LITTLE:
        target.frombytes(blob)
        return
    chunk = array(target.typecode)
    chunk.frombytes(blob)
    chunk.byteswap()
    target.extend(chunk)


@dataclass(frozen=True)
class ChunkRow:
    """One row of ``metric_chunks``, ready to insert, with where its extremes are."""

    seq: int
    n: int
    step_min: int
    step_max: int
    vmin: float | None
    vmax: float | None
    t_min: float
    t_max: float
    steps: bytes
    vals: bytes
    times: bytes
    vmin_step: int | None  # the step of vmin / vmax (not stored in the row; for metric_stats)
    vmax_step: int | None


def _summarize(steps: array, vals: array, times: array) -> tuple[int, int, int | None, int | None, float, float]:
    """step range, indices of the value extremes (NaN ignored), time range."""
    np = sys.modules.get("numpy")  # used when the training script already loaded it: ~20x faster
    if np is not None and getattr(getattr(np, "__spec__", None), "_initializing", False):
        np = None  # another thread is importing numpy right now: it is only partly there
    if np is not None and len(vals) > 32:
        s = np.frombuffer(steps, dtype=np.int64)
        v = np.frombuffer(vals, dtype=np.float64)
        t = np.frombuffer(times, dtype=np.float64)
        if np.isnan(v).all():
            lo = hi = None
        else:
            lo, hi = int(np.nanargmin(v)), int(np.nanargmax(v))
        return int(s.min()), int(s.max()), lo, hi, float(t.min()), float(t.max())
    lo, hi = nan_aware_extremes(vals)
    # Wall times are taken in logging order, so first and last bound them (barring a clock
    # step backwards, which only blurs a time-axis query by that step); steps may come in
    # any order.
    return min(steps), max(steps), lo, hi, times[0], times[-1]


def to_rows(series: MetricSeries, first_seq: int) -> list[ChunkRow]:
    """Split ``series`` into rows of at most :data:`CHUNK_POINTS`, numbered from ``first_seq``."""
    rows = []
    whole = len(series) <= CHUNK_POINTS
    for index, start in enumerate(range(0, len(series), CHUNK_POINTS)):
        if whole:
            steps, vals, times = series.steps, series.values, series.times
        else:
            stop = start + CHUNK_POINTS
            steps, vals, times = series.steps[start:stop], series.values[start:stop], series.times[start:stop]
        step_min, step_max, lo, hi, t_min, t_max = _summarize(steps, vals, times)
        rows.append(
            ChunkRow(
                seq=first_seq + index, n=len(steps), step_min=step_min, step_max=step_max,
                vmin=None if lo is None else vals[lo], vmax=None if hi is None else vals[hi],
                t_min=t_min, t_max=t_max, steps=pack(steps), vals=pack(vals), times=pack(times),
                vmin_step=None if lo is None else steps[lo], vmax_step=None if hi is None else steps[hi],
            )
        )
    return rows


def extremes_of(rows: list[ChunkRow]) -> tuple[float | None, int | None, float | None, int | None]:
    """``(min, its step, max, its step)`` over rows; the first occurrence wins ties."""
    lows = [row for row in rows if row.vmin is not None]
    highs = [row for row in rows if row.vmax is not None]
    low = min(lows, key=lambda row: row.vmin) if lows else None  # type: ignore[arg-type,return-value]
    high = max(highs, key=lambda row: row.vmax) if highs else None  # type: ignore[arg-type,return-value]
    return (
        None if low is None else low.vmin, None if low is None else low.vmin_step,
        None if high is None else high.vmax, None if high is None else high.vmax_step,
    )


@dataclass
class KeyTail:
    """What a writer must know about the end of one key's chunk list."""

    next_seq: int = 0
    small: list[tuple[int, int]] = field(default_factory=list)  # trailing (seq, n) with n < CHUNK_POINTS

    @property
    def small_points(self) -> int:
        return sum(n for _, n in self.small)

    def should_merge(self, incoming: int) -> bool:
        """Merge the trailing small rows into this write of ``incoming`` points?"""
        if not self.small:
            return False
        return len(self.small) + 1 >= MERGE_AFTER or self.small_points + incoming >= CHUNK_POINTS

    def after_write(self, rows: list[ChunkRow]) -> None:
        """Update the tail after ``rows`` were written at the end of the key's list."""
        for row in rows:
            if row.n < CHUNK_POINTS:
                self.small.append((row.seq, row.n))
            else:
                self.small.clear()
        if rows:
            self.next_seq = rows[-1].seq + 1


def within_steps(series: MetricSeries, min_step: int | None, max_step: int | None) -> MetricSeries:
    """The points of ``series`` with a step within the bounds (``series`` itself when there are none)."""
    if min_step is None and max_step is None:
        return series
    lo = -(2**63) if min_step is None else min_step
    hi = 2**63 - 1 if max_step is None else max_step
    kept = MetricSeries()
    for step, value, at in series.points():
        if lo <= step <= hi:
            kept.append(step, value, at)
    return kept
