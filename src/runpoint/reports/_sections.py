"""The sections of a report, each built from the store and the run's directory: the run,
summary, best metrics, final metrics, plots, media, checkpoints, config, metadata and the
tail of the console log. :func:`report_sections` gives them in page order.
"""

from __future__ import annotations

import io
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import query
from .._util.git import changes_note
from .._util.yaml import read_limited
from ..artifacts.paths import resolve_inside
from ..errors import ConfigError, InvalidArgumentError
from ..logs.segments import LocalLogFolder, tail_lines
from ..query import analysis
from ..run.console import clean_console, console_logs
from ..run.nonfinite import SUMMARY_KEY, SUMMARY_STEP, SUMMARY_VALUE
from ..store import RunRecord, Store
from ._content import Figure, KeyValues, Note, Pre, Section, Table, fmt

DIAGNOSTIC_KEYS = ("watch/grad_norm", "watch/param_norm", "watch/update_ratio", "watch/clip_events",
                   "watch/grad_nan", "watch/act_nan")
SYSTEM_KEYS = ("system/cpu_percent", "system/memory_percent", "system/proc/rss_mb", "system/gpu0/util_percent",
               "system/gpu0/memory_used_mb", "perf/samples_per_s")


def _when(timestamp: float | None) -> str:
    return "–" if timestamp is None else datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else (f"{minutes}m {secs:02d}s" if minutes else f"{secs}s")


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- sections ------------------------------------------------------------------------------

def _overview(store: Store, run: RunRecord) -> Section:
    rows = [
        ("id", run.id), ("name", run.name), ("project", run.project), ("status", run.status.value),
        ("created", _when(run.created_at)), ("ended", _when(run.ended_at)), ("duration", _duration(run.duration)),
        ("host", f"{run.host or '?'} (pid {run.pid})"), ("directory", str(query.run_dir(store, run))),
    ]
    if run.group:
        rows.append(("group", run.group))
    if run.tags:
        rows.append(("tags", ", ".join(run.tags)))
    if run.resume_count:
        rows.append(("resumed", f"{run.resume_count} time(s)"))
    if run.notes:
        rows.append(("notes", run.notes))
    section = Section("Run", "run", [KeyValues(rows)])
    if run.error:
        section.blocks += [Note("The run ended with an error:"), Pre(run.error.rstrip())]
    return section


def _summary(store: Store, run: RunRecord) -> Section:
    summary = store.get_summary(run.id)
    section = Section("Summary", "summary")
    if SUMMARY_STEP in summary:
        section.blocks.append(Note(
            f"{summary.get(SUMMARY_KEY)} first became {summary.get(SUMMARY_VALUE)} at step {summary[SUMMARY_STEP]}."
        ))
    if summary:
        section.blocks.append(KeyValues([(key, fmt(value)) for key, value in summary.items()]))
    else:
        section.blocks.append(Note("Nothing was set on run.summary."))
    return section


def _best(store: Store, run: RunRecord) -> Section:
    section = Section("Best metrics", "best")
    found = analysis.best_metrics(store, run.id)
    if not found:
        section.blocks.append(Note("No metric with a known direction (loss, accuracy, ...) was logged."))
        return section
    section.blocks.append(Table(
        ["metric", "best", "at step", "goal", "last", "last step"],
        [[b.key + (" (monitored)" if b.monitored else ""), fmt(b.value), fmt(b.step),
          "lower" if b.mode == "min" else "higher", fmt(b.last), fmt(b.last_step)] for b in found],
    ))
    return section


def _final_metrics(store: Store, run: RunRecord) -> Section:
    section = Section("Metrics", "metrics")
    stats = store.metric_stats(run.id)
    if not stats:
        section.blocks.append(Note("The run logged no metrics."))
        return section
    section.blocks.append(Table(
        ["metric", "points", "last", "step", "min", "max"],
        [[key, str(s.count), fmt(s.last), str(s.last_step), fmt(s.min), fmt(s.max)] for key, s in stats.items()],
    ))
    return section


def _plots(store: Store, run: RunRecord, smoothing: float) -> Section:
    from . import plots

    section = Section("Plots", "plots")
    keys = set(store.metric_keys(run.id))
    if not keys:
        section.blocks.append(Note("Nothing to plot: the run logged no metrics."))
        return section
    section.blocks.append(Figure("training", _png(plots.training_panel(store, run, smoothing=smoothing)),
                                 "Loss, accuracy, loss on a log scale and the generalisation gap."))
    stats = store.metric_stats(run.id)
    for name, wanted, axis, caption in (
        ("diagnostics", DIAGNOSTIC_KEYS, "step", "Gradient and parameter statistics from run.watch()."),
        ("system", SYSTEM_KEYS, "time", "System metrics and throughput over the run's wall time."),
    ):
        present = [key for key in wanted if key in stats and stats[key].count >= 2][:4]
        if present:
            figure = plots.keys_figure(store, run, present, smoothing=smoothing, axis=axis)
            section.blocks.append(Figure(name, _png(figure), caption))
    return section


def _media(store: Store, run: RunRecord) -> Section | None:
    try:
        keys = query.media_keys(store, run.id)
    except Exception:  # a store without media support: leave the section out
        return None
    if not keys:
        return None
    section = Section("Media", "media")
    run_dir = query.run_dir(store, run)
    for media_key in keys:
        (record,) = query.read_media(store, run.id, media_key.key, step=media_key.last_step)
        heading = f"{record.key} at step {record.step} ({media_key.count} logged)"
        caption = record.data.get("caption")
        if caption:
            heading += f": {caption}"
        image = _media_file(run_dir, record.path) if record.kind == "image" else None
        if image is not None:
            section.blocks.append(Figure(_stem(record.key), image.read_bytes(), heading, logged=True))
        elif record.kind == "text":
            section.blocks += [Note(heading), Pre(str(record.data.get("text", "")))]
        elif record.kind == "table":
            rows = record.data.get("rows", [])
            section.blocks += [Note(heading + (f", first 50 of {len(rows)} rows" if len(rows) > 50 else "")),
                               Table([str(c) for c in record.data.get("columns", [])],
                                     [[fmt(cell) for cell in row] for row in rows[:50]])]
        elif record.kind == "histogram":
            data = record.data
            facts = (f"{heading}: {data.get('count')} values, min {fmt(data.get('min'))}, max {fmt(data.get('max'))}, "
                     f"mean {fmt(data.get('mean'))}, std {fmt(data.get('std'))}, NaN {data.get('nan')}, inf {data.get('inf')}")
            section.blocks.append(Figure(_stem(record.key), _png(_histogram_figure(record)), facts))
    return section


def _histogram_figure(record: Any) -> Any:
    from .plots import new_figure

    edges, counts = record.data.get("edges", []), record.data.get("counts", [])
    figure = new_figure(6, 2.6)
    ax = figure.subplots()
    if counts:
        widths = [b - a for a, b in zip(edges, edges[1:])]
        ax.bar(edges[:-1], counts, width=widths, align="edge", color="#1f77b4", edgecolor="white", linewidth=0.3)
    ax.set_title(f"{record.key} (step {record.step})", fontsize=10)
    ax.set_ylabel("count")
    ax.grid(True, alpha=0.3)
    return figure


def _stem(key: str) -> str:
    return "media-" + re.sub(r"[^A-Za-z0-9._-]", "_", key)


def _checkpoints(store: Store, run: RunRecord) -> Section:
    section = Section("Checkpoints", "checkpoints")
    rows = _checkpoint_rows(store, run.id)
    if not rows:
        section.blocks.append(Note("The run saved no checkpoints."))
        return section
    table = Table(["step", "path", "size", "metrics", "best", "saved", "deleted"], [])
    for row in sorted(rows, key=lambda r: r.get("step", 0)):
        metrics = row.get("metrics")
        try:
            metrics = json.loads(metrics) if isinstance(metrics, str) else metrics
        except ValueError:
            pass
        table.rows.append([
            fmt(row.get("step")), fmt(row.get("path")), _bytes(row.get("bytes")),
            ", ".join(f"{k} {fmt(v)}" for k, v in metrics.items()) if isinstance(metrics, dict) else fmt(metrics),
            "yes" if row.get("is_best") else "", _when(row.get("created_at")),
            _when(row.get("deleted_at")) if row.get("deleted_at") else "",
        ])
    section.blocks.append(table)
    return section


def _checkpoint_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    from ..store.sqlite.store import SQLiteStore
    from ..store.sqlite.transfer import table_rows

    if not isinstance(store, SQLiteStore):
        return []
    return table_rows(store, "checkpoints", run_id)


def _bytes(size: Any) -> str:
    if not isinstance(size, (int, float)):
        return fmt(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _config(store: Store, run: RunRecord) -> Section:
    section = Section("Config", "config")
    params = store.get_params(run.id)
    if params:
        section.blocks.append(KeyValues([(key, fmt(value)) for key, value in params.items()]))
    else:
        section.blocks.append(Note("The run has no config."))
    config_file = query.run_dir(store, run) / "config.yaml"
    if config_file.is_file():
        try:
            text = read_limited(config_file)
        except ConfigError as exc:
            section.blocks.append(Note(f"config.yaml is not shown: {exc}"))
        else:
            section.blocks += [Note("config.yaml as the run saw it (secrets masked):"), Pre(text)]
    return section


def _metadata(store: Store, run: RunRecord) -> Section:
    meta = store.get_meta(run.id)
    rows: list[tuple[str, str]] = []
    python = meta.get("python") or {}
    torch = meta.get("torch") or {}
    git = meta.get("git") or {}
    for label, value in (
        ("runpoint", meta.get("runpoint")), ("python", python.get("version")), ("os", meta.get("os")),
        ("user", meta.get("user")), ("cpus", meta.get("cpu_count")),
        ("torch", torch.get("version")), ("cuda", torch.get("cuda")),
        ("gpus", ", ".join(g.get("name", "?") for g in meta.get("gpus") or []) or None),
        ("git", f"{(git.get('commit') or '?')[:12]} on {git.get('branch') or '?'}"
                + (f" ({changes_note(git)})" if changes_note(git) else "") if git else None),
        ("command", " ".join(meta.get("argv") or []) or None), ("working directory", meta.get("cwd")),
        ("seeds", fmt(meta.get("seeds")) if meta.get("seeds") else None),
    ):
        if value not in (None, ""):
            rows.append((label, fmt(value)))
    section = Section("Metadata", "metadata", [KeyValues(rows)] if rows else [Note("No metadata was captured.")])
    return section


def _console(store: Store, run: RunRecord, lines: int) -> Section:
    section = Section("Console", "console")
    files = console_logs(query.run_dir(store, run) / "logs")
    if not files:
        section.blocks.append(Note("No console output was captured."))
        return section
    latest = files[-1]
    folder = LocalLogFolder(query.run_dir(store, run) / "logs")
    text = clean_console(tail_lines(folder, latest, lines)) if lines else ""
    shown = len(text.splitlines())
    section.blocks += [Note(f"The last {shown} line(s) of logs/{latest}"
                            + (f" ({len(files)} log files in all)" if len(files) > 1 else "") + ":"),
                       Pre(text or "(empty)")]
    return section


def _media_file(run_dir: Path, path: str | None) -> Path | None:
    """The file a media row names, if it is one inside the run's media/ folder (a row imported
    from an archive could name any path)."""
    if not path or not path.startswith("media/"):
        return None
    try:
        return resolve_inside(run_dir / "media", path.removeprefix("media/"))
    except InvalidArgumentError:
        return None


def report_sections(store: Store, run: RunRecord, *, console_lines: int, smoothing: float) -> list[Section]:
    """Every section the run has, in page order (media is left out when the run logged none)."""
    sections = [
        _overview(store, run), _summary(store, run), _best(store, run), _final_metrics(store, run),
        _plots(store, run, smoothing), _media(store, run), _checkpoints(store, run), _config(store, run),
        _metadata(store, run), _console(store, run, console_lines),
    ]
    return [s for s in sections if s is not None]
