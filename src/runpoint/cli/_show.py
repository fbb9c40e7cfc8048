"""What ``runpoint show`` prints for one run: a panel of facts, the sinks it was mirrored
to, its config (non-default values first), summary and metrics, and its error."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from .. import query
from .._util.git import changes_note
from ..store import RunRecord, Store
from ._config_defaults import split_defaults
from ._output import (
    console,
    err_console,
    fmt_age,
    fmt_duration,
    fmt_number,
    fmt_time,
    status_text,
)


def print_run_details(store: Store, run: RunRecord, details: dict[str, Any], *, show_all: bool) -> None:
    """Print ``details`` (from :func:`runpoint.query.run_details`, with ``external`` when mirrored)."""
    console.print(Panel(_facts(store, run, details["meta"]), title=f"run {run.id}", expand=False))
    if details.get("external"):
        console.print(_mirrored_table(details["external"]))
    changed, defaults = split_defaults(details["params"])
    if changed:
        console.print(_key_value_table("config" if not defaults else "config (non-default)", changed))
    if details["summary"]:
        console.print(_key_value_table("summary", details["summary"]))
    if details["metrics"]:
        console.print(_metrics_table(details["metrics"]))
    if details.get("ranks"):
        console.print(_ranks_table(details["ranks"]))
    if defaults and show_all:
        console.print(_key_value_table("config (schema defaults)", defaults))
    elif defaults:
        err_console.print(f"({len(defaults)} config values at the schema's defaults not shown; --all shows them)")
    if run.error:
        console.print(Panel(escape(run.error.rstrip()), title="error", border_style="red", expand=False))


def _facts(store: Store, run: RunRecord, meta: dict[str, Any]) -> Table:
    git = meta.get("git") or {}
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("id", run.id)
    head.add_row("name", escape(run.name))
    head.add_row("project", escape(run.project) + (f"  (group {escape(run.group)})" if run.group else ""))
    head.add_row("status", status_text(run.status.value) + (f"  (resumed {run.resume_count}x)" if run.resume_count else ""))
    head.add_row("created", f"{fmt_time(run.created_at)}  ({fmt_age(run.created_at)})")
    head.add_row("duration", fmt_duration(run.duration))
    if run.tags:
        head.add_row("tags", escape(", ".join(run.tags)))
    if run.notes:
        head.add_row("notes", escape(run.notes))
    head.add_row("host", escape(f"{run.host} (pid {run.pid})"))
    if git:
        changes = changes_note(git)
        dirty = f" + {changes}" if changes else ""
        head.add_row("git", escape(f"{(git.get('commit') or '?')[:12]} on {git.get('branch') or '?'}{dirty}"))
    head.add_row("config hash", (run.config_hash or "-")[:12])
    where = f"{store.location} ({run.dir} on the server)" if "://" in store.location else str(query.run_dir(store, run))
    head.add_row("directory", escape(where))
    return head


def _mirrored_table(external: dict[str, Any]) -> Table:
    table = Table(title="mirrored to", box=None, title_justify="left", title_style="bold")
    for heading in ("sink", "status", "where"):
        table.add_column(heading)
    for sink, record in external.items():
        ids = record.get("external") or {}
        where = ids.get("url") or ids.get("logdir") or ids.get("dir") or ids.get("run_id") or ""
        status = str(record.get("status", "?")) + (f": {record['error']}" if record.get("error") else "")
        table.add_row(escape(sink), escape(status), escape(str(where)))
    return table


def _metrics_table(metrics: dict[str, Any]) -> Table:
    table = Table(title="metrics", box=None, title_justify="left", title_style="bold")
    for heading in ("key", "points", "last", "step", "min", "max"):
        table.add_column(heading, justify="left" if heading == "key" else "right")
    for key, m in metrics.items():
        table.add_row(
            escape(key), str(m["count"]), fmt_number(m["last"]), str(m["last_step"]),
            fmt_number(m["min"]), fmt_number(m["max"]),
        )
    return table


def _ranks_table(ranks: list[dict[str, Any]]) -> Table:
    """One row per rank of a multi-rank job: where it ran, how it ended, the first line of its error."""
    table = Table(title=f"ranks ({len(ranks)})", box=None, title_justify="left", title_style="bold")
    for column in ("rank", "host", "pid", "status", "last heartbeat", "error"):
        table.add_column(column, justify="right" if column in ("rank", "pid") else "left")
    for rank in ranks:
        error = (rank["error"] or "").strip().splitlines()
        table.add_row(str(rank["rank"]), escape(rank["host"] or "-"), str(rank["pid"] or "-"),
                      status_text(rank["status"]), fmt_age(rank["heartbeat_at"]), escape(error[-1] if error else ""))
    return table


def _key_value_table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, box=None, title_justify="left", title_style="bold")
    table.add_column("key")
    table.add_column("value")
    for key, value in values.items():
        table.add_row(escape(key), escape(fmt_number(value)))
    return table
