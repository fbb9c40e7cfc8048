"""Commands that look inside runs: plot, report, media."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import query
from ..store.base import MediaRecord
from ._oserror import writing
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    fmt_number,
    friendly_errors,
    print_json,
)
from .runs import RunArgument, _open

SmoothingOption = Annotated[
    float, typer.Option("--smoothing", "-s", min=0.0, max=0.999, help="EMA smoothing of the solid lines, 0 (none) to 0.999.")
]
AxisOption = Annotated[str, typer.Option("--x", help="x axis: step, epoch (from the 'epoch' metric) or time (seconds).")]


def plot(
    refs: Annotated[
        list[str],
        typer.Argument(help="RUN [KEY...]: a run and the metrics to chart; with --key, runs to overlay.", show_default=False),
    ],
    key: Annotated[Optional[str], typer.Option("--key", "-k", help="Overlay this metric of every run given.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Image file: .png, .svg or .pdf. Default: <run id>.png.")] = None,
    smoothing: SmoothingOption = 0.6,
    axis: AxisOption = "step",
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Chart a run's metrics: by default loss, accuracy, log-scale loss and the val - train gap.

    Examples: `runpoint plot latest`, `runpoint plot latest train/loss train/lr`,
    `runpoint plot run1 run2 run3 --key val/loss`.
    """
    from ..reports import plots

    store = _open(root)
    if key is not None:
        runs = [query.resolve_run(store, ref) for ref in refs]
        missing = [run for run in runs if key not in store.metric_keys(run.id)]
        for run in missing:
            err_console.print(f"runpoint: run {run.id} ({run.name}) has no metric {key!r}; left out", markup=False)
        figure = plots.overlay_figure(store, runs, key, smoothing=smoothing, axis=axis)
        default_name = re.sub(r"[^A-Za-z0-9._-]", "_", key) + ".png"
        keys = [key]
    else:
        runs = [query.resolve_run(store, refs[0])]
        keys = refs[1:]
        if keys:
            figure = plots.keys_figure(store, runs[0], keys, smoothing=smoothing, axis=axis)
        else:
            if not store.metric_keys(runs[0].id):
                raise fail(f"run {runs[0].id} logged no metrics to plot")
            figure = plots.training_panel(store, runs[0], smoothing=smoothing, axis=axis)
        default_name = f"{runs[0].id}.png"
    with writing(out or default_name, "choose another --out"):
        path = plots.save(figure, out if out is not None else Path(default_name))
    if as_json:
        print_json({"out": str(path), "runs": [run.id for run in runs], "keys": keys})
    else:
        err_console.print(f"wrote {path}", markup=False)


def report(
    run_ref: RunArgument,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="A .html file, or a directory for report-<run id>.html. Default: here.")
    ] = None,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Console lines to include.")] = 50,
    smoothing: SmoothingOption = 0.6,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write an HTML page (self-contained) and a Markdown file describing one run."""
    from ..reports.report import write_report

    store = _open(root)
    run = query.resolve_run(store, run_ref)
    with writing(out or ".", "choose another --out"):
        files = write_report(store, run, out, console_lines=lines, smoothing=smoothing)
    if as_json:
        print_json({"html": str(files.html), "markdown": str(files.markdown), "images": [str(p) for p in files.images]})
    else:
        err_console.print(f"wrote {files.html} and {files.markdown}", markup=False)


def media(
    run_ref: RunArgument,
    key: Annotated[Optional[str], typer.Argument(help="Media key; omit to list the run's media keys.", show_default=False)] = None,
    step: Annotated[Optional[int], typer.Option("--step", help="Only this step.")] = None,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """List a run's logged images, histograms, texts and tables, or the values of one key."""
    store = _open(root)
    run = query.resolve_run(store, run_ref)
    if key is None:
        keys = query.media_keys(store, run.id)
        if as_json:
            print_json([vars(k) for k in keys])
            return
        if not keys:
            err_console.print(f"run {run.id} has logged no media")
            return
        table = Table(box=None, header_style="bold")
        for heading in ("KEY", "KIND", "COUNT", "FIRST STEP", "LAST STEP"):
            table.add_column(heading, justify="left" if heading in ("KEY", "KIND") else "right")
        for k in keys:
            table.add_row(escape(k.key), k.kind, str(k.count), str(k.first_step), str(k.last_step))
        console.print(table)
        return
    records = query.read_media(store, run.id, key, step=step)
    run_dir = query.run_dir(store, run)
    if as_json:
        print_json([
            {"key": r.key, "step": r.step, "kind": r.kind, "time": r.time, "data": r.data,
             "file": str(run_dir / r.path) if r.path else None}
            for r in records
        ])
        return
    if not records:
        err_console.print(f"no {key!r} at step {step}")
        return
    table = Table(box=None, header_style="bold")
    for heading in ("STEP", "KIND", "VALUE"):
        table.add_column(heading, justify="right" if heading == "STEP" else "left")
    for record in records:
        table.add_row(str(record.step), record.kind, escape(_describe(record, run_dir)))
    console.print(table)


def _describe(record: "MediaRecord", run_dir: Path) -> str:
    data = record.data
    if record.kind == "image":
        return f"{data.get('width')}x{data.get('height')}  {run_dir / record.path if record.path else ''}"
    if record.kind == "histogram":
        return (f"{data.get('count')} values in {len(data.get('counts', []))} bins, "
                f"min {fmt_number(data.get('min'))}, max {fmt_number(data.get('max'))}, mean {fmt_number(data.get('mean'))}")
    if record.kind == "table":
        return f"{len(data.get('rows', []))} rows x {len(data.get('columns', []))} columns: {', '.join(data.get('columns', []))}"
    text = str(data.get("text", ""))
    return text if len(text) <= 100 else text[:97] + "..."


def register(app: typer.Typer) -> None:
    for command in (plot, report, media):
        app.command(command.__name__)(friendly_errors(command))
