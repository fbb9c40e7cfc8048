"""``runpoint alerts``: the alerts of one run, or of every run, newest last."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import query
from ..query.alerts import check_level, list_alerts
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fmt_time,
    friendly_errors,
    print_json,
)
from ._tables import print_table
from .runs import _open

_LEVEL_STYLE = {"info": "cyan", "warning": "yellow", "error": "bold red"}


def alerts(
    run_ref: Annotated[Optional[str], typer.Argument(
        help="Run id, unique id prefix, run name or 'latest'; omit for every run.", show_default=False)] = None,
    level: Annotated[Optional[str], typer.Option(
        "--level", "-l", help="Only alerts of this level or above: info, warning or error.")] = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Only runs of this project.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Show the newest N alerts (0: all).")] = 100,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """List alerts: NaN/Inf, loss spikes, divergence, plateaus, stalls, throughput drops and run.alert calls.

    Examples: `runpoint alerts`, `runpoint alerts latest --level error`, `runpoint alerts --json`.
    """
    check_level(level)
    store = _open(root)
    run = query.resolve_run(store, run_ref) if run_ref is not None else None
    found = list_alerts(store, run.id if run else None, min_level=level, project=project, limit=limit or None)
    if as_json:
        print_json([vars(alert) for alert in found])
        return
    if not found:
        where = f"run {run.id}" if run else "any run"
        err_console.print(f"no alerts{f' of level {level} or above' if level else ''} in {where}", markup=False)
        return
    table = Table(box=None, header_style="bold")
    for heading in ("TIME", "RUN", "LEVEL", "KIND", "STEP"):
        table.add_column(heading, justify="right" if heading == "STEP" else "left", no_wrap=True)
    table.add_column("TITLE", overflow="fold")  # wraps between words when the terminal is narrow
    for alert in found:
        style = _LEVEL_STYLE.get(alert.level, "")
        table.add_row(fmt_time(alert.time), alert.run_id, f"[{style}]{alert.level}[/]", alert.kind,
                      "" if alert.step is None else str(alert.step), escape(alert.title))
    print_table(console, table)


def register(app: typer.Typer) -> None:
    app.command("alerts")(friendly_errors(alerts))
