"""Charts of runs, drawn with matplotlib (imported here, lazily; no pyplot, no GUI backend).

- :func:`training_panel`: the 2x2 overview of one run: loss (train vs val), accuracy,
  loss on a log scale, and the generalisation gap (val - train, the training loss
  smoothed and read at each validation step);
- :func:`keys_figure`: one panel per metric key of one run;
- :func:`overlay_figure`: one metric of several runs on one chart.

Raw points are drawn faint and an EMA of them solid (``smoothing`` as TensorBoard's
slider), for series of at least :data:`SMOOTH_MIN_POINTS` points; sparser ones (validation
once an epoch) are drawn as they are, with markers; the step where a loss first became NaN/Inf (the run's ``first_nonfinite/step``)
is marked with a red dashed line. Series of more than :data:`MAX_POINTS` points are
thinned to the min and max of each bucket, so spikes stay visible.

Example::

    from runpoint import plots, query
    store = query.open_root()
    figure = plots.training_panel(store, query.resolve_run(store, "latest"))
    plots.save(figure, "run.png")
"""

from __future__ import annotations

import bisect
import math
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .._util.fs import atomic_path, require_parent_dir
from ..errors import InvalidArgumentError, RunpointError
from ..query import analysis
from ..run.nonfinite import SUMMARY_KEY, SUMMARY_STEP
from ..store import MetricSeries, RunRecord, Store

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_POINTS = 4000
SMOOTH_MIN_POINTS = 20  # sparser series (validation every epoch) are drawn as they are: an EMA would lag
FORMATS = (".png", ".svg", ".pdf")
_TRAIN_PREFIXES = ("train", "training", "")
_VAL_PREFIXES = ("val", "valid", "validation", "eval", "dev", "test")
_TRAIN_COLOR, _VAL_COLOR, _GAP_COLOR = "#1f77b4", "#ff7f0e", "#2ca02c"
_AXIS_LABELS = {"step": "step", "epoch": "epoch", "time": "seconds since start"}


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise RunpointError("plots need matplotlib: pip install 'runpoint[plots]'") from None
    return matplotlib


def new_figure(width: float, height: float) -> "Figure":
    """A matplotlib Figure with an Agg canvas, made without pyplot (no global state)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save(figure: "Figure", out: str | os.PathLike[str]) -> Path:
    """Write ``figure`` to ``out`` (.png, .svg or .pdf), atomically."""
    path = Path(out)
    if path.suffix.lower() not in FORMATS:
        raise InvalidArgumentError("out", f"{path.name!r}: the file must end in {', '.join(FORMATS)}")
    require_parent_dir(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=path.suffix[1:].lower())
    return path


# -- picking keys ------------------------------------------------------------------------

def _split(key: str) -> tuple[str, str]:
    prefix, _, name = key.rpartition("/")
    return prefix.lower(), name.lower()


def find_pair(keys: Sequence[str], word: str) -> tuple[str | None, str | None]:
    """The training and validation keys of a quantity (``loss``, ``acc``...), or None each.

    ``train/loss`` and ``val/loss`` are found, and so are ``training/loss``, ``loss``,
    ``valid/loss``, ``eval/loss``, ``val_loss``; an exact name beats one that only
    contains the word (``loss`` beats ``loss_aux``).
    """
    pattern = re.compile(rf"^(?:(?P<p>[a-z]+)_)?{word}(?P<rest>[a-z_]*)$")

    def rank(key: str, prefixes: Sequence[str]) -> tuple[int, int] | None:
        if key.startswith(("watch/", "system/", "perf/")):
            return None
        prefix, name = _split(key)
        match = pattern.match(name)
        if not match:
            return None
        scope = prefix or (match["p"] or "")
        if scope not in prefixes:
            return None
        return (0 if not match["rest"] and not match["p"] else 1, len(key))

    def best(prefixes: Sequence[str]) -> str | None:
        ranked = [(rank(key, prefixes), key) for key in keys]
        found = sorted((r, key) for r, key in ranked if r is not None)
        return found[0][1] if found else None

    return best(_TRAIN_PREFIXES), best(_VAL_PREFIXES)


# -- drawing -----------------------------------------------------------------------------

def _thin(xs: list[float], ys: list[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most about ``limit`` points: the min and max of each bucket, in x order."""
    if len(xs) <= limit:
        return xs, ys
    size = math.ceil(len(xs) / (limit // 2))
    thin_x: list[float] = []
    thin_y: list[float] = []
    for start in range(0, len(xs), size):
        bucket = range(start, min(start + size, len(xs)))
        finite = [i for i in bucket if math.isfinite(ys[i])]
        if not finite:
            thin_x.append(xs[start])
            thin_y.append(ys[start])
            continue
        low = min(finite, key=ys.__getitem__)
        high = max(finite, key=ys.__getitem__)
        for i in sorted({low, high}):
            thin_x.append(xs[i])
            thin_y.append(ys[i])
    return thin_x, thin_y


class _Context:
    """What the panels of one run share: the store, the run, the axis and the smoothing."""

    def __init__(self, store: Store, run: RunRecord, axis: str, smoothing: float) -> None:
        if axis not in analysis.AXES:
            raise InvalidArgumentError("axis", f"{axis!r} is not one of {', '.join(analysis.AXES)}")
        analysis.ema([], smoothing)  # validates smoothing
        self.store, self.run, self.axis, self.smoothing = store, run, axis, smoothing
        self.keys = store.metric_keys(run.id)
        summary = store.get_summary(run.id)
        marker = summary.get(SUMMARY_STEP)
        self.nonfinite_step = marker if isinstance(marker, int) else None
        self.nonfinite_key = summary.get(SUMMARY_KEY) if summary.get(SUMMARY_KEY) in self.keys else None
        self._cache: dict[str, MetricSeries] = {}

    def series(self, key: str) -> MetricSeries:
        if key not in self._cache:
            self._cache[key] = analysis.sorted_by_step(self.store.read_metric(self.run.id, key))
        return self._cache[key]

    def x(self, series: MetricSeries) -> list[float]:
        return analysis.x_values(self.store, self.run, series, self.axis)

    def mark_nonfinite(self, ax: "Axes") -> None:
        if self.nonfinite_step is None:
            return
        marker = MetricSeries()
        marker.append(self.nonfinite_step, 0.0, _time_at_step(self, self.nonfinite_step))
        try:
            (x,) = self.x(marker)
        except InvalidArgumentError:
            return
        if math.isfinite(x):
            ax.axvline(x, color="#d62728", linestyle="--", linewidth=1, label=f"first NaN/Inf (step {self.nonfinite_step})")


def _time_at_step(context: _Context, step: int) -> float:
    """When the run was at ``step``: the time of the non-finite point itself."""
    if context.nonfinite_key is not None:
        series = context.series(context.nonfinite_key)
        index = bisect.bisect_left(series.steps, step)
        if index < len(series):
            return series.times[index]
    return math.nan


def _draw_series(ax: "Axes", context: _Context, key: str, color: str, label: str | None = None) -> None:
    series = context.series(key)
    xs, ys = context.x(series), list(series.values)
    label = label or key
    thin_x, thin_y = _thin(xs, ys)
    if context.smoothing and len(series) >= SMOOTH_MIN_POINTS:
        ax.plot(thin_x, thin_y, color=color, alpha=0.25, linewidth=1, label=f"{label} (raw)")
        smooth_x, smooth_y = _thin(xs, analysis.ema(ys, context.smoothing))
        ax.plot(smooth_x, smooth_y, color=color, linewidth=1.8, label=label)
    else:
        ax.plot(thin_x, thin_y, color=color, linewidth=1.5, marker="o" if len(series) <= 50 else None,
                markersize=3, label=label)


def _empty(ax: "Axes", message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#777777")
    ax.set_xticks([])
    ax.set_yticks([])


def _finish(ax: "Axes", context: _Context, title: str, ylabel: str = "") -> None:
    context.mark_nonfinite(ax)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(_AXIS_LABELS[context.axis])
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    shown = [(h, lab) for h, lab in zip(handles, labels) if not lab.endswith("(raw)")]
    if shown:
        ax.legend(*zip(*shown), fontsize=8, loc="best")


def _pair_panel(ax: "Axes", context: _Context, word: str, title: str, log: bool = False) -> bool:
    train, val = find_pair(context.keys, word)
    if train is None and val is None:
        _empty(ax, f"no {title.lower()} metric logged")
        ax.set_title(title, fontsize=11)
        return False
    if train is not None:
        _draw_series(ax, context, train, _TRAIN_COLOR)
    if val is not None:
        _draw_series(ax, context, val, _VAL_COLOR)
    if log:
        ax.set_yscale("log")
    _finish(ax, context, title, word)
    return True


def _gap_panel(ax: "Axes", context: _Context) -> bool:
    title = "Generalisation gap (val \u2212 train)"
    train, val = find_pair(context.keys, "loss")
    if train is None or val is None:
        _empty(ax, "needs a training and a validation loss")
        ax.set_title(title, fontsize=11)
        return False
    gap = analysis.gap(context.series(val), context.series(train), smoothing=context.smoothing)
    xs, ys = context.x(gap), list(gap.values)
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    dense = context.smoothing and len(gap) >= SMOOTH_MIN_POINTS
    label = f"{val} \u2212 {train}" + (f" (train EMA {context.smoothing:g})" if context.smoothing else "")
    ax.plot(xs, ys, color=_GAP_COLOR, alpha=0.3 if dense else 1.0, marker=None if dense else "o", markersize=4,
            linewidth=1 if dense else 1.5, label=f"{label} (raw)" if dense else label)
    if dense:
        ax.plot(xs, analysis.ema(ys, context.smoothing), color=_GAP_COLOR, linewidth=1.8, label=label)
    _finish(ax, context, title, "loss difference")
    return True


def training_panel(store: Store, run: RunRecord, *, smoothing: float = 0.6, axis: str = "step") -> "Figure":
    """The 2x2 overview: loss, accuracy, loss on a log scale, generalisation gap."""
    context = _Context(store, run, axis, smoothing)
    figure = new_figure(12, 8)
    (loss, accuracy), (log_loss, gap) = figure.subplots(2, 2)
    has_loss = _pair_panel(loss, context, "loss", "Loss")
    _pair_panel(accuracy, context, "acc", "Accuracy")
    _pair_panel(log_loss, context, "loss", "Loss (log scale)", log=True)
    if _gap_panel(gap, context) and has_loss:
        gap.set_xlim(loss.get_xlim())  # the gap starts at the first validation; keep the run's x range
    figure.suptitle(f"{run.name}  ({run.id}, {run.project}, {run.status.value})", fontsize=13)
    return figure


def keys_figure(
    store: Store, run: RunRecord, keys: Sequence[str], *, smoothing: float = 0.6, axis: str = "step"
) -> "Figure":
    """One panel per key of ``run``."""
    context = _Context(store, run, axis, smoothing)
    missing = [key for key in keys if key not in context.keys]
    if missing:
        hint = ", ".join(context.keys[:15]) or "no metrics"
        raise InvalidArgumentError("key", f"run {run.id} has no metric {missing[0]!r}; it has: {hint}")
    columns = 1 if len(keys) == 1 else 2
    rows = math.ceil(len(keys) / columns)
    figure = new_figure(6.5 * columns, 4 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, key in enumerate(keys):
        ax = axes[index // columns][index % columns]
        _draw_series(ax, context, key, _TRAIN_COLOR)
        _finish(ax, context, key)
    for index in range(len(keys), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(f"{run.name}  ({run.id})", fontsize=13)
    return figure


def overlay_figure(
    store: Store, runs: Sequence[RunRecord], key: str, *, smoothing: float = 0.6, axis: str = "step"
) -> "Figure":
    """``key`` of every run in ``runs`` on one chart, one colour per run."""
    figure = new_figure(10, 6)
    ax = figure.subplots()
    colors = [f"C{i % 10}" for i in range(len(runs))]
    drawn = 0
    for run, color in zip(runs, colors):
        context = _Context(store, run, axis, smoothing)
        if key not in context.keys:
            continue
        _draw_series(ax, context, key, color, label=f"{run.name} ({run.id})")
        drawn += 1
    if not drawn:
        raise InvalidArgumentError("key", f"none of the runs logged {key!r}")
    ax.set_title(key, fontsize=12)
    ax.set_xlabel(_AXIS_LABELS[axis])
    ax.grid(True, alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    shown = [(h, lab) for h, lab in zip(handles, labels) if not lab.endswith("(raw)")]
    ax.legend(*zip(*shown), fontsize=8, loc="best")
    return figure
