"""Commands that read and manage runs: ls, show, metrics, compare, export, rm."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import query
from ..errors import StoreError
from ..query import export as export_module
from ..query.groups import DEFAULT_IGNORE, group_runs
from ..query.selectors import is_selector, select_runs
from ..run.liveness import run_is_dead
from ..sinks.hub import read_external
from ..store import RunRecord, RunStatus, Store
from . import compare_stats
from ._oserror import writing
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    fmt_number,
    fmt_time,
    friendly_errors,
    print_json,
    status_text,
)
from ._run_list import GROUP_KEYS, grouped, runs_json, runs_table
from ._show import print_run_details
from ._show_logs import print_console, print_runpoint_log
from ._tables import natural_width, print_table, short_headers, value_column

RunArgument = Annotated[str, typer.Argument(help="Run id, unique id prefix, run name, or 'latest'.", show_default=False)]


def _open(root: Path | None, allow_empty: bool = False) -> Store:
    store = query.open_root(root)
    if store.count_runs() == 0 and not allow_empty:
        store.close()
        raise fail(f"{store.location} holds no runs yet (try `runpoint demo`)")
    return store


def ls(
    root: RootOption = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="Only this project.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="Only runs with this tag (repeatable).")] = None,
    status: Annotated[Optional[str], typer.Option("--status", "-s", help="running, completed, failed, killed or crashed.")] = None,
    where: Annotated[
        Optional[list[str]],
        typer.Option("--where", "-w", help="Filter like 'params.training.lr > 1e-4' or 'metrics.val/loss < 0.5' (repeatable)."),
    ] = None,
    group: Annotated[Optional[str], typer.Option("--group", help="Only runs of this group (sweep, study).")] = None,
    config_hash: Annotated[Optional[str], typer.Option("--config-hash", help="Only runs whose config hash starts with this.")] = None,
    columns: Annotated[
        Optional[str], typer.Option("--columns", "-c", help="Extra columns, comma separated: params.x, metrics.y, summary.z.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many runs.")] = 50,
    group_by: Annotated[
        Optional[str], typer.Option("--group-by", "-g", help="Group the runs by config (hash), group, project or status.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first."""
    if group_by is not None and group_by not in GROUP_KEYS:
        raise fail(f"--group-by {group_by!r}: use one of {', '.join(GROUP_KEYS)}", 2)
    store = _open(root, allow_empty=as_json)  # a script reading --json gets [] from an empty root
    runs = query.list_runs(
        store, project=project, tags=tag or (), status=status, where=where or (), group=group,
        config_hash=config_hash, limit=limit + 1,
    )
    more = len(runs) > limit
    runs = runs[:limit]
    extra = [c.strip() for c in columns.split(",") if c.strip()] if columns else []
    groups = grouped(runs, group_by)
    if as_json:
        print_json(runs_json(store, groups, group_by, extra))
        return
    if not runs:
        err_console.print("no runs match")
        return
    print_table(console, runs_table(store, groups, group_by, extra))
    if more:
        err_console.print(f"(showing the newest {limit}; --limit shows more)")


def show(
    run_ref: RunArgument,
    root: RootOption = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also list the config values left at the schema's defaults.")
    ] = False,
    as_json: JsonOption = False,
    show_console: Annotated[bool, typer.Option("--console", help="Print the run's captured console output instead "
                                               "(every log, across its compressed segments).")] = False,
    runpoint_log: Annotated[bool, typer.Option("--runpoint-log", help="Print runpoint's own events of the run "
                                               "(logs/runpoint.log) instead.")] = False,
    lines: Annotated[Optional[int], typer.Option("--lines", "-n", min=1, help="With --console/--runpoint-log: "
                                                 "only the last N lines.", show_default=False)] = None,
) -> None:
    """Everything about one run: status, config, summary, metrics, where it ran.

    With a typed config (rp.ProjectConfig), the values that differ from the schema's
    defaults come first; --all lists the defaults too. --console prints what the run
    printed; --runpoint-log what runpoint itself logged about it (checkpoints, sync, sinks).
    """
    store = _open(root)
    run = query.resolve_run(store, run_ref)
    if show_console or runpoint_log:
        if show_console and runpoint_log:
            raise fail("give one of --console and --runpoint-log")
        if show_console:
            print_console(store, run, lines)
        else:
            print_runpoint_log(store, run, lines, as_json)
        return
    if lines is not None:
        raise fail("--lines goes with --console or --runpoint-log")
    details = query.run_details(store, run)
    external = read_external(query.run_dir(store, run))
    if external:
        details["external"] = external
    if as_json:
        print_json(details)
        return
    print_run_details(store, run, details, show_all=show_all)


def metrics(
    run_ref: RunArgument,
    key: Annotated[Optional[str], typer.Argument(help="Metric key; omit to list the run's metrics.", show_default=False)] = None,
    root: RootOption = None,
    limit: Annotated[
        Optional[int],
        typer.Option("--limit", "-n", min=1, help="Show the last N points. (default: 20 in the table, all with --json)",
                     show_default=False),
    ] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Show every point.")] = False,
    as_json: JsonOption = False,
) -> None:
    """A metric's history (step, value, time), or the list of a run's metrics."""
    store = _open(root)
    run = query.resolve_run(store, run_ref)
    if key is None:
        stats = store.metric_stats(run.id)
        if as_json:
            print_json({k: {"count": s.count, "last": s.last, "min": s.min, "max": s.max} for k, s in stats.items()})
            return
        if not stats:
            err_console.print(f"run {run.id} has logged no metrics")
            return
        table = Table(box=None, header_style="bold")
        for heading in ("KEY", "POINTS", "LAST", "MIN", "MAX"):
            table.add_column(heading, justify="left" if heading == "KEY" else "right")
        for k, s in stats.items():
            table.add_row(escape(k), str(s.count), fmt_number(s.last), fmt_number(s.min), fmt_number(s.max))
        console.print(table)
        return
    series = query.metric_history(store, run.id, key)
    if limit is None:
        limit = len(series) if as_json else 20
    start = 0 if show_all else max(0, len(series) - limit)
    if as_json:
        print_json({"run_id": run.id, "key": key, "steps": series.steps[start:], "values": series.values[start:],
                    "times": series.times[start:]})
        return
    table = Table(box=None, header_style="bold")
    for heading in ("STEP", "VALUE", "TIME"):
        table.add_column(heading, justify="right")
    for index in range(start, len(series)):
        table.add_row(str(series.steps[index]), fmt_number(series.values[index]), fmt_time(series.times[index]))
    console.print(table)
    if start:
        err_console.print(f"(last {len(series) - start} of {len(series)} points; --all shows every one)")


def compare(  # long: one option list for the three modes of compare (side by side, grouped, tested)
    run_refs: Annotated[
        Optional[list[str]],
        typer.Argument(help="Runs (ids, names) or selectors (tag:NAME, config:KEY=VALUE, cfg:HASH, 'id1,id2').", show_default=False),
    ] = None,
    root: RootOption = None,
    group: Annotated[
        Optional[str], typer.Option("--group", help="Compare every run of this group (a sweep, an Optuna study), oldest first.")
    ] = None,
    all_params: Annotated[bool, typer.Option("--all-params", help="Also show config values that are the same.")] = False,
    group_by: Annotated[
        Optional[str], typer.Option("--group-by", help="'config': group runs whose configs differ only in --ignore keys.")
    ] = None,
    ignore: Annotated[
        Optional[list[str]],
        typer.Option("--ignore", help="Config key (or pattern, '*.seed') the grouping ignores (repeatable; default: the seed).",
                     show_default=False),
    ] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m", help="Metric to summarize or test (repeatable).")] = None,
    test: Annotated[bool, typer.Option("--test", help="Is B better than A? Welch's t-test and bootstrap CI of two sets of runs.")] = False,
    side_a: Annotated[Optional[str], typer.Option("--a", help="With --test: side A (runs or a selector).", show_default=False)] = None,
    side_b: Annotated[Optional[str], typer.Option("--b", help="With --test: side B (runs or a selector).", show_default=False)] = None,
    which: Annotated[str, typer.Option("--which", help="With --test: compare each run's final or best value.")] = "final",
    mode: Annotated[Optional[str], typer.Option("--mode", help="max or min: which way is better (default: from run.monitor or the name).")] = None,
    project: Annotated[Optional[str], typer.Option("--project", "-p", help="With --group-by and no runs: only this project.")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", "-t", help="With --group-by and no runs: only runs with this tag.")] = None,
    where: Annotated[Optional[list[str]], typer.Option("--where", "-w", help="With --group-by and no runs: filters as in ls.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs side by side: config values that differ, and final metrics.

    --group-by config groups the seeds of each config (mean ± std, 95% CI); --test says whether
    B is better than A (compare tag:baseline tag:new --metric val/acc --test).
    """
    run_refs = run_refs or []
    ignored = list(ignore) if ignore else list(DEFAULT_IGNORE)
    if which not in ("final", "best"):
        raise fail(f"--which {which!r}: use final or best", 2)
    if test:
        store = _open(root)
        first, second = compare_stats.sides(store, run_refs, side_a, side_b, ignored)
        results = compare_stats.run_tests(store, first, second, metric or [], which, mode)
        compare_stats.print_tests(results, dict((first, second)), as_json)
        return
    if group_by is not None:
        if group_by != "config":
            raise fail(f"--group-by {group_by!r}: compare groups by config only", 2)
        store = _open(root)
        runs = _selected(store, run_refs, group) if run_refs or group else query.list_runs(
            store, project=project, tags=tag or (), where=where or (), newest_first=False)
        if not runs:
            raise fail("no runs match")
        compare_stats.print_groups(group_runs(store, runs, ignore=ignored, metrics=metric), as_json)
        return
    if group is None and len(run_refs) < 2:
        raise fail("compare needs at least two runs, or --group", 2)
    store = _open(root)
    runs = _selected(store, run_refs, group)
    result = query.compare(store, runs)
    if as_json:
        print_json(result.to_dict())
        return
    params = dict(result.params)
    if all_params:
        params.update({key: [value] * len(runs) for key, value in result.same_params.items()})
    table = _compare_table(runs, params, result.metrics)
    if natural_width(console, table) > console.width:
        table = _compare_rows(runs, params, result.metrics)  # many runs: one row each, the keys as columns
    print_table(console, table)
    if not result.params:
        err_console.print(f"(the configs are identical: {len(result.same_params)} values)")


def _selected(store: Store, refs: list[str], group: str | None) -> list[RunRecord]:
    """The runs of ``--group`` (oldest first), then those named, each once."""
    runs = query.list_runs(store, group=group, newest_first=False) if group is not None else []
    if group is not None and not runs:
        raise fail(f"no runs in group {group!r} (`runpoint ls` shows the groups)")
    for ref in refs:
        for run in select_runs(store, ref) if is_selector(ref) else [query.resolve_run(store, ref)]:
            if run.id not in {r.id for r in runs}:
                runs.append(run)
    return runs


def _compare_table(runs: list[RunRecord], params: dict[str, list[Any]], metrics: dict[str, list[Any]]) -> Table:
    """One column per run, one row per config value and metric."""
    table = Table(box=None, header_style="bold")
    table.add_column("")
    for run in runs:
        table.add_column(f"{run.id}\n{escape(run.name)}", justify="right", no_wrap=True)
    table.add_row("[bold]status[/]", *(status_text(run.status.value) for run in runs))
    if params:
        table.add_section()
        table.add_row("[bold]config[/]", *([""] * len(runs)))
        for key in sorted(params):
            table.add_row(escape(key), *(escape(fmt_number(v)) for v in params[key]))
    if metrics:
        table.add_section()
        table.add_row("[bold]final metrics[/]", *([""] * len(runs)))
        for key, values in metrics.items():
            table.add_row(escape(key), *(fmt_number(v) for v in values))
    return table


def _compare_rows(runs: list[RunRecord], params: dict[str, list[Any]], metrics: dict[str, list[Any]]) -> Table:
    """One row per run; columns: the config values, then the final metrics (headers shortened, unambiguous)."""
    columns = [(f"config.{key}", params[key]) for key in sorted(params)]
    columns += [(f"metrics.{key}", values) for key, values in metrics.items()]
    headers = short_headers(name for name, _ in columns)
    table = Table(box=None, header_style="bold")
    table.add_column("ID", no_wrap=True)
    table.add_column("NAME", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    for name, _ in columns:
        value_column(table, headers[name], justify="right")
    for index, run in enumerate(runs):
        table.add_row(run.id, escape(run.name), status_text(run.status.value),
                      *(escape(fmt_number(values[index])) for _, values in columns))
    return table


def export(
    run_ref: RunArgument,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or parquet.")] = "csv",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="File or directory; '-' for stdout. Default: <run id>.<format>.")] = None,
    archive: Annotated[
        bool, typer.Option("--archive", help="Write the whole run (metrics, media, logs, checkpoints) to one .tar.gz for `runpoint import`.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Write a run's metrics to CSV, JSON or Parquet, or the whole run to an archive."""
    store = _open(root)
    run = query.resolve_run(store, run_ref)
    if archive:
        from ..query.archive import export_archive

        with writing(out or f"{run.id}.tar.gz", "choose another --out"):
            path = export_archive(store, run, out)
        err_console.print(f"wrote run {run.id} to {path} (runpoint import {path.name} restores it)", markup=False)
        return
    with writing(out or f"{run.id}.{fmt.lower()}", "choose another --out"):
        where, count = export_module.export_run(store, run, fmt.lower(), out)
    err_console.print(f"wrote {count} points of run {run.id} to {where}", markup=False)


def rm(
    run_refs: Annotated[list[str], typer.Argument(help="Runs to delete.", show_default=False)],
    root: RootOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also delete runs that are still running, and (with --yes) "
                                        "runs that registered model versions come from, with those versions.")] = False,
) -> None:
    """Delete runs: their records, metrics and directories (asking first about registered model versions)."""
    store = _open(root)
    runs = list({run.id: run for run in (query.resolve_run(store, ref) for ref in run_refs)}.values())  # once each
    live = [run for run in runs if run.status is RunStatus.RUNNING and run_is_dead(store, run) is None]
    if live and not force:
        raise fail(f"run {live[0].id} is still running (pid {live[0].pid}); stop it first or pass --force")
    root_dir = Path(store.location).parent.resolve()
    directories = {}
    for run in runs:  # every check before anything is deleted
        try:
            directories[run.id] = query.run_dir(store, run)
        except StoreError:
            raise fail(f"refusing to delete {(root_dir / run.dir).resolve()}: it is outside the root {root_dir}") from None
    held = _registered_versions(store, runs)
    for run in runs:
        console.print(f"  {run.id}  {escape(run.name)}  ({run.project}, {run.status.value})")
    for run_id, versions in held.items():
        console.print(f"run {run_id} has registered model versions {versions}; deleting it deletes their checkpoints, "
                      "so those versions (and their aliases) are deleted with it", markup=False)
    if held and yes and not force:
        raise fail(f"run {next(iter(held))} has registered model versions {next(iter(held.values()))}; nothing "
                   "deleted (pass --force with --yes to delete them with the run, or leave out --yes to be asked)")
    if not yes:
        question = f"Delete {len(runs)} run(s) and their files" + (" and those model versions?" if held else "?")
        if not typer.confirm(question, default=False):
            raise fail("nothing deleted")
    left: list[str] = []
    for run in runs:
        if run.id in held:  # the versions first: an alias never names a checkpoint that is gone
            from ..models.runs import delete_run_versions

            delete_run_versions(store, run.id)
        store.delete_run(run.id)
        if directories[run.id].exists():
            shutil.rmtree(directories[run.id], onerror=lambda _f, path, exc: left.append(f"{path}: {exc[1]}"))
    err_console.print(f"deleted {len(runs)} run(s)")
    if left:
        raise fail("some files could not be deleted: " + "; ".join(left[:3]) + (" ..." if len(left) > 3 else ""))


def _registered_versions(store: Any, runs: list[Any]) -> dict[str, str]:
    """run id -> ``m:1 (champion), m:2`` for the runs that registered model versions come from."""
    from ..models.runs import run_versions_text

    texts = {run.id: run_versions_text(store, run.id) for run in runs}
    return {run_id: text for run_id, text in texts.items() if text}


def register(app: typer.Typer) -> None:
    for command in (ls, show, metrics, compare, export, rm):
        app.command(command.__name__)(friendly_errors(command))

