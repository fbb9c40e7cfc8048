"""``runpoint report RUN``: one run on one page, as self-contained HTML and as Markdown.

Sections: the run (status, times, host, tags, notes, error), summary (values set on
``run.summary`` and where the NaN guard fired), best metrics (best value and step of
every metric with a known direction, see :func:`runpoint.query.analysis.best_metrics`), final
metrics, plots (the training overview, gradient diagnostics and system metrics when the
run logged them), media (the latest value of each media key), checkpoints (the registry,
when the run saved any), config, metadata, and the tail of the console log.

The HTML needs nothing else: styles are inline and images are ``data:`` URIs. The
Markdown links its images, written beside it into ``<name>_files/``.

Example::

    files = write_report(store, run, "reports/")
    print(files.html, files.markdown)
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from .. import query
from .._util.fs import require_parent_dir, write_atomic
from .._util.git import changes_note
from .._util.yaml import read_limited
from ..artifacts.paths import resolve_inside
from ..errors import ConfigError, InvalidArgumentError
from ..query import analysis
from ..run.console import clean_console, console_logs
from ..run.nonfinite import SUMMARY_KEY, SUMMARY_STEP, SUMMARY_VALUE
from ..store import RunRecord, Store

DIAGNOSTIC_KEYS = ("watch/grad_norm", "watch/param_norm", "watch/update_ratio", "watch/clip_events",
                   "watch/grad_nan", "watch/act_nan")
SYSTEM_KEYS = ("system/cpu_percent", "system/memory_percent", "system/proc/rss_mb", "system/gpu0/util_percent",
               "system/gpu0/memory_used_mb", "perf/samples_per_s")


# -- the content, independent of the output format ---------------------------------------

@dataclass
class KeyValues:
    rows: list[tuple[str, str]]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    name: str  # file name stem for the Markdown version
    png: bytes
    caption: str
    logged: bool = False  # an image the run logged (small ones are shown enlarged), not a chart


@dataclass
class Pre:
    text: str


@dataclass
class Note:
    text: str


Block = KeyValues | Table | Figure | Pre | Note


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    status: str
    sections: list[Section]


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put the report."""

    html: Path
    markdown: Path
    images: list[Path]


def fmt(value: Any) -> str:
    """A value as a report shows it: floats to 6 significant digits, JSON for containers."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


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
    text = clean_console(_tail(latest, lines)) if lines else ""
    shown = len(text.splitlines())
    section.blocks += [Note(f"The last {shown} line(s) of logs/{latest.name}"
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


def _tail(path: Path, lines: int, block: int = 1 << 16) -> str:
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        data = b""
        while size > 0 and data.count(b"\n") <= lines:
            step = min(block, size)
            size -= step
            handle.seek(size)
            data = handle.read(step) + data
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])


def build_report(store: Store, run: RunRecord, *, console_lines: int = 50, smoothing: float = 0.6) -> Report:
    """Collect everything the report shows."""
    if isinstance(console_lines, bool) or not isinstance(console_lines, int) or console_lines < 0:
        raise InvalidArgumentError("console_lines", f"must be a non-negative int, got {console_lines!r}")
    sections = [
        _overview(store, run), _summary(store, run), _best(store, run), _final_metrics(store, run),
        _plots(store, run, smoothing), _media(store, run), _checkpoints(store, run), _config(store, run),
        _metadata(store, run), _console(store, run, console_lines),
    ]
    return Report(
        title=f"{run.name}", subtitle=f"run {run.id} · project {run.project}",
        status=run.status.value, sections=[s for s in sections if s is not None],
    )


def write_report(
    store: Store, run: RunRecord, out: str | os.PathLike[str] | None = None, *,
    console_lines: int = 50, smoothing: float = 0.6,
) -> ReportFiles:
    """Write ``<name>.html``, ``<name>.md`` and the Markdown's images.

    ``out`` is a ``.html`` file (the Markdown goes beside it) or a directory (the files
    are named ``report-<run id>``); default: the working directory.
    """
    from .render import to_html, to_markdown

    target = Path(out) if out is not None else Path(".")
    if target.suffix.lower() in (".html", ".htm"):
        html_path = target
    elif target.suffix:
        raise InvalidArgumentError("out", f"{target.name!r}: give a .html file or a directory")
    else:
        target.mkdir(parents=True, exist_ok=True)
        html_path = target / f"report-{run.id}.html"
    require_parent_dir(html_path)
    report = build_report(store, run, console_lines=console_lines, smoothing=smoothing)
    markdown_path = html_path.with_suffix(".md")
    files_dir = html_path.with_name(f"{html_path.stem}_files")
    images: list[Path] = []
    for section in report.sections:
        for block in section.blocks:
            if isinstance(block, Figure):
                files_dir.mkdir(exist_ok=True)
                image = files_dir / f"{block.name}.png"
                write_atomic(image, block.png)
                images.append(image)
    write_atomic(html_path, to_html(report))
    write_atomic(markdown_path, to_markdown(report, f"{files_dir.name}/"))
    return ReportFiles(html=html_path, markdown=markdown_path, images=images)


def image_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")

