"""What ``runpoint ls`` prints: runs grouped by a key, extra columns from params, metrics
or summary, as a table or as JSON rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.table import Table

from .. import query
from ..store import RunRecord, Store
from ._output import fail, fmt_age, fmt_duration, fmt_number, status_text
from ._tables import short_headers, value_column

GROUP_KEYS: dict[str, Callable[[RunRecord], str | None]] = {
    "config": lambda run: run.config_hash,
    "group": lambda run: run.group,
    "project": lambda run: run.project,
    "status": lambda run: run.status.value,
}

RunGroups = list[tuple[str | None, list[RunRecord]]]


def grouped(runs: list[RunRecord], group_by: str | None) -> RunGroups:
    """Runs in groups of equal key, groups in the order of their newest run; one group without group_by."""
    if group_by is None:
        return [(None, runs)]
    groups: dict[str | None, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(GROUP_KEYS[group_by](run), []).append(run)
    return list(groups.items())


def runs_json(store: Store, groups: RunGroups, group_by: str | None, extra: list[str]) -> list[dict[str, Any]]:
    """The runs as ``--json`` prints them: one dict per run, or one per group holding its runs."""
    cache: dict[str, Any] = {}
    rows = []
    for run in (run for _, members in groups for run in members):
        row = query.record_dict(run)
        for column in extra:
            row[column] = _column_value(store, run, column, cache)
        rows.append(row)
    if group_by is None:
        return rows
    by_id = {row["id"]: row for row in rows}
    return [{"by": group_by, "key": key, "count": len(members), "runs": [by_id[r.id] for r in members]}
            for key, members in groups]


def runs_table(store: Store, groups: RunGroups, group_by: str | None, extra: list[str]) -> Table:
    """One row per run, a heading row before each group when grouped."""
    cache: dict[str, Any] = {}
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("ID", "PROJECT", "NAME", "STATUS", "CREATED", "DURATION"):  # kept whole (see print_table)
        table.add_column(heading, no_wrap=True)
    table.add_column("TAGS", overflow="fold")
    headers = short_headers(extra)
    for column in extra:
        value_column(table, headers[column])
    for key, members in groups:
        if group_by is not None:
            if table.row_count:
                table.add_section()
            label = (key or "-")[:12] if group_by == "config" else (key or "-")
            table.add_row(f"[bold]{escape(group_by)} {escape(label)}[/]", f"[dim]{len(members)} run(s)[/]")
        for run in members:
            table.add_row(
                run.id, escape(run.project), escape(run.name), status_text(run.status.value), fmt_age(run.created_at),
                fmt_duration(run.duration), escape(",".join(run.tags)),
                *(escape(_column_value(store, run, column, cache)) for column in extra),
            )
    return table


def _column_value(store: Store, run: RunRecord, column: str, cache: dict[str, Any]) -> str:
    scope, _, key = column.partition(".")
    if scope in {"params", "config"}:
        params = cache.setdefault(f"p:{run.id}", store.get_params(run.id))
        return fmt_number(params.get(key))
    if scope == "metrics":
        stats = cache.setdefault(f"m:{run.id}", store.metric_stats(run.id))
        return fmt_number(stats[key].last if key in stats else None)
    if scope == "summary":
        summary = cache.setdefault(f"s:{run.id}", query.full_summary(store, run.id))
        return fmt_number(summary.get(key))
    raise fail(f"--columns: {column!r} must start with params., metrics. or summary.", 2)
