"""Downsampling a metric for a chart: min and max per pixel bucket, from chunk summaries where possible.

A chart is a few hundred to a few thousand pixels wide, so a series of a million points
is cut into that many buckets along the x axis and each bucket sends its smallest and
largest value, each at the x where it occurred (a line through them draws every spike a
full-resolution plot would). Each bucket also sends its mean, which smoothing uses.

The store keeps each chunk's point count, step and time range and value extremes beside
its blobs (:class:`~runpoint.store.bulk.ChunkSummary`). Chunks outside the requested x
range are never read, and a chunk that falls entirely inside one bucket contributes its
summary without reading its points: a zoomed view of a long run reads a few chunks, and a
coarse view of a very long run reads only the chunks that straddle bucket edges. (For
those summarised chunks the bucket mean uses the chunk's mid-range, so smoothing is an
approximation there; min and max stay exact.)

Non-finite values (NaN, ±inf) cannot be drawn: they become gaps, and are counted.

Example::

    from runpoint.store.bulk import bulk_reader
    result = downsample_metric(bulk_reader(store), run.id, "train/loss", buckets=800)
    len(result.x) <= 1600
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from ..store.bulk import BulkReader, ChunkSummary

Axis = Literal["step", "time"]

DEFAULT_BUCKETS = 1000
MAX_BUCKETS = 4000


@dataclass
class Downsampled:
    """What a chart receives for one metric of one run.

    ``x``/``y``: the points to draw, in x order (``None`` in ``y`` is a gap). When
    ``raw`` is false they are each bucket's minimum and maximum, and ``bucket_x`` /
    ``bucket_mean`` hold each bucket's centre and mean (what smoothing uses).
    """

    x: list[float] = field(default_factory=list)
    y: list[float | None] = field(default_factory=list)
    bucket_x: list[float] = field(default_factory=list)
    bucket_mean: list[float | None] = field(default_factory=list)
    raw: bool = True
    total: int = 0          # points the metric has
    in_range: int = 0       # points within the requested x range
    nonfinite: int = 0      # NaN / inf points in range, drawn as gaps
    buckets: int = 0
    chunks_total: int = 0
    chunks_read: int = 0
    x_min: float | None = None
    x_max: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "x": self.x, "y": self.y, "bucket_x": self.bucket_x, "bucket_mean": self.bucket_mean,
            "raw": self.raw, "total": self.total, "in_range": self.in_range, "nonfinite": self.nonfinite,
            "buckets": self.buckets, "chunks_total": self.chunks_total, "chunks_read": self.chunks_read,
            "x_min": self.x_min, "x_max": self.x_max,
        }


def _span(chunk: ChunkSummary, axis: Axis) -> tuple[float, float]:
    return (chunk.step_min, chunk.step_max) if axis == "step" else (chunk.t_min, chunk.t_max)


def _finite_or_none(values: Any) -> list[float | None]:
    import numpy as np

    finite = np.isfinite(values)
    listed: list[float | None] = values.tolist()
    if not finite.all():
        for index in np.flatnonzero(~finite).tolist():
            listed[index] = None
    return listed


def downsample_metric(
    reader: BulkReader,
    run_id: str,
    key: str,
    *,
    axis: Axis = "step",
    x0: float | None = None,
    x1: float | None = None,
    buckets: int = DEFAULT_BUCKETS,
) -> Downsampled:
    """Downsample one metric of one run along ``axis`` (steps or Unix times) within [x0, x1].

    Returns every point when the range holds no more than two per bucket.
    """
    import numpy as np

    buckets = max(1, min(int(buckets), MAX_BUCKETS))
    index = reader.chunk_index(run_id, key)
    result = Downsampled(total=sum(c.n for c in index), chunks_total=len(index), buckets=buckets)
    lo = -np.inf if x0 is None else float(x0)
    hi = np.inf if x1 is None else float(x1)
    overlapping = [c for c in index if _span(c, axis)[1] >= lo and _span(c, axis)[0] <= hi]
    if not overlapping:
        return result
    first = min(_span(c, axis)[0] for c in overlapping)
    last = max(_span(c, axis)[1] for c in overlapping)
    lo, hi = max(lo, first), min(hi, last)
    result.x_min, result.x_max = float(lo), float(hi)

    candidates = sum(c.n for c in overlapping)
    if candidates <= 2 * buckets or hi <= lo:
        return _raw(result, *_read(reader, run_id, key, [c.seq for c in overlapping], axis, lo, hi), len(overlapping))

    result.raw = False
    grid = _Buckets(lo, (hi - lo) / buckets, buckets)
    summarised: list[ChunkSummary] = []  # each inside one bucket: its summary stands for its points
    to_read: list[int] = []
    for chunk in overlapping:
        start, stop = _span(chunk, axis)
        if start >= lo and stop <= hi and grid.of(start) == grid.of(stop):
            summarised.append(chunk)
        else:
            to_read.append(chunk.seq)
    result.chunks_read = len(to_read)

    read = _read(reader, run_id, key, to_read, axis, lo, hi) if to_read else None
    if not summarised and read is not None and len(read[0]) <= 2 * buckets:
        return _raw(result, *read, len(to_read))  # a zoomed range: few points inside the chunks read

    if read is not None:
        xs, ys = read
        result.in_range += len(xs)
        if len(xs):
            grid.add_points(xs, ys)
    for chunk in summarised:
        result.in_range += chunk.n
        grid.add_summary(chunk, _span(chunk, axis))
    result.nonfinite = int(max(0, grid.counts.sum() - grid.finite_counts.sum()))
    grid.emit(result)
    return result


def _raw(result: Downsampled, xs: Any, ys: Any, chunks_read: int) -> Downsampled:
    """Every point, in x order."""
    import numpy as np

    order = np.argsort(xs, kind="stable")
    xs, ys = xs[order], ys[order]
    result.raw = True
    result.chunks_read = chunks_read
    result.in_range = len(xs)
    result.nonfinite = int((~np.isfinite(ys)).sum())
    result.x, result.y = xs.tolist(), _finite_or_none(ys)
    result.bucket_x, result.bucket_mean = [], []
    return result


def _read(
    reader: BulkReader, run_id: str, key: str, seqs: Sequence[int], axis: Axis, lo: float, hi: float
) -> tuple[Any, Any]:
    import numpy as np

    raw_x, raw_values = reader.read_xy(run_id, key, seqs, "steps" if axis == "step" else "times")
    values = np.frombuffer(raw_values, dtype=np.float64)
    xs = np.frombuffer(raw_x, dtype=np.int64).astype(np.float64) if axis == "step" else np.frombuffer(raw_x, dtype=np.float64)
    keep = (xs >= lo) & (xs <= hi)
    if keep.all():
        return xs, values
    return xs[keep], values[keep]


class _Buckets:
    """``n`` buckets of ``width`` from ``lo``, each with its smallest and largest finite value
    (and the x of each), the sum and count of its finite values, and its count of points."""

    def __init__(self, lo: float, width: float, n: int) -> None:
        import numpy as np

        self.lo, self.width, self.n = lo, width, n
        self.mins = np.full(n, np.inf)
        self.maxs = np.full(n, -np.inf)
        self.min_x = np.zeros(n)
        self.max_x = np.zeros(n)
        self.sums = np.zeros(n)
        self.finite_counts = np.zeros(n, dtype=np.int64)
        self.counts = np.zeros(n, dtype=np.int64)

    def of(self, x: float) -> int:
        """The bucket ``x`` falls in (the first or last one for an x outside them)."""
        return min(self.n - 1, max(0, int((x - self.lo) // self.width)))

    def add_points(self, xs: Any, ys: Any) -> None:
        """Fold points into the buckets, vectorised with reduceat."""
        import numpy as np

        lo, width, buckets = self.lo, self.width, self.n
        mins, maxs, min_x, max_x = self.mins, self.maxs, self.min_x, self.max_x
        sums, finite_counts, counts = self.sums, self.finite_counts, self.counts

        bucket = np.clip(((xs - lo) // width).astype(np.int64), 0, buckets - 1)
        if len(bucket) > 1 and (np.diff(bucket) < 0).any():  # steps logged out of order
            order = np.argsort(bucket, kind="stable")
            bucket, xs, ys = bucket[order], xs[order], ys[order]
        starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
        which = bucket[starts]
        sizes = np.diff(np.concatenate((starts, [len(bucket)])))
        finite = np.isfinite(ys)
        all_finite = bool(finite.all())
        low = ys if all_finite else np.where(finite, ys, np.inf)
        high = ys if all_finite else np.where(finite, ys, -np.inf)
        bucket_min = np.minimum.reduceat(low, starts)
        bucket_max = np.maximum.reduceat(high, starts)
        positions = np.arange(len(ys))
        first_min = np.minimum.reduceat(np.where(low == np.repeat(bucket_min, sizes), positions, len(ys)), starts)
        first_max = np.minimum.reduceat(np.where(high == np.repeat(bucket_max, sizes), positions, len(ys)), starts)
        has = np.isfinite(bucket_min)
        counts[which] += sizes
        finite_counts[which] += sizes if all_finite else np.add.reduceat(finite.astype(np.int64), starts)
        sums[which] += np.add.reduceat(ys if all_finite else np.where(finite, ys, 0.0), starts)
        better_min = has & (bucket_min < mins[which])
        better_max = has & (bucket_max > maxs[which])
        mins[which[better_min]] = bucket_min[better_min]
        min_x[which[better_min]] = xs[first_min[better_min]]
        maxs[which[better_max]] = bucket_max[better_max]
        max_x[which[better_max]] = xs[first_max[better_max]]

    def add_summary(self, chunk: ChunkSummary, span: tuple[float, float]) -> None:
        """Fold in a chunk that lies inside one bucket by its summary, at the middle of its ``span``."""
        b = self.of(span[0])
        self.counts[b] += chunk.n
        mid_x = sum(span) / 2
        if chunk.vmin is None or chunk.vmax is None:
            return  # all NaN: contributes to the count only
        self.finite_counts[b] += chunk.n  # approximately: a chunk's NaNs are not counted apart
        self.sums[b] += (chunk.vmin + chunk.vmax) / 2 * chunk.n
        if chunk.vmin < self.mins[b]:
            self.mins[b], self.min_x[b] = chunk.vmin, mid_x
        if chunk.vmax > self.maxs[b]:
            self.maxs[b], self.max_x[b] = chunk.vmax, mid_x

    def emit(self, result: Downsampled) -> None:
        """Set ``result``'s points to draw (in x order) and bucket means from the buckets."""
        import numpy as np

        lo, width = self.lo, self.width
        mins, maxs, min_x, max_x = self.mins, self.maxs, self.min_x, self.max_x
        sums, finite_counts, counts = self.sums, self.finite_counts, self.counts

        used = np.flatnonzero(counts > 0)
        centres = lo + (used + 0.5) * width
        has = finite_counts[used] > 0
        means = np.where(has, sums[used] / np.maximum(finite_counts[used], 1), np.nan)
        result.bucket_x = centres.tolist()
        result.bucket_mean = _finite_or_none(means)
        xs: list[float] = []
        ys: list[float | None] = []
        for b, centre, ok in zip(used.tolist(), centres.tolist(), has.tolist()):
            if not ok:
                xs.append(centre)
                ys.append(None)
                continue
            a, b_ = (min_x[b], mins[b]), (max_x[b], maxs[b])
            first, second = (a, b_) if a[0] <= b_[0] else (b_, a)
            xs.append(float(first[0]))
            ys.append(float(first[1]))
            if second != first:
                xs.append(float(second[0]))
                ys.append(float(second[1]))
        result.x, result.y = xs, ys


def epoch_knots(steps: Any, epochs: Any) -> tuple[Any, Any]:
    """Monotone (step, epoch) knots that turn steps into fractional epochs by interpolation.

    ``steps``/``epochs`` are the logged epoch metric. Integer epochs logged every step
    become the first step of each epoch (epoch ``e`` spans ``e`` to ``e + 1``); fractional
    epochs are used as logged.
    """
    import numpy as np

    steps = np.asarray(steps, dtype=np.float64)
    epochs = np.asarray(epochs, dtype=np.float64)
    keep = np.isfinite(epochs)
    steps, epochs = steps[keep], epochs[keep]
    if not len(steps):
        return steps, epochs
    order = np.argsort(steps, kind="stable")
    steps, epochs = steps[order], epochs[order]
    if np.all(epochs == np.round(epochs)):
        change = np.concatenate(([True], np.diff(epochs) != 0))
        knot_steps = np.concatenate((steps[change], [steps[-1] + 1]))
        knot_epochs = np.concatenate((epochs[change], [epochs[-1] + 1]))
    else:
        knot_steps, knot_epochs = steps, epochs
    knot_epochs = np.maximum.accumulate(knot_epochs)  # interpolation needs a monotone map
    return knot_steps, knot_epochs
