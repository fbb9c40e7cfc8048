"""``runpoint gc`` (delete old runs, by flags or by the config's retention policy) and ``runpoint du``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from .. import query, retention
from .._util.durations import format_age
from ..errors import InvalidArgumentError
from ..store import Store
from ._ckpt_rows import size_text
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    friendly_errors,
    print_json,
    status_text,
)
from ._tables import print_table

ProjectOption = Annotated[Optional[str], typer.Option("--project", "-p", help="Only this project.", show_default=False)]


def _policy_rule(config: str, profile: str | None, project: str | None) -> tuple[retention.GcRule, str | None]:
    """The rule of ``experiment.retention`` in the config, and the config's ``experiment.root``."""
    from ..config.load import load_config
    from ..config.schema import ProjectConfig

    if not Path(config).expanduser().exists():
        raise fail(f"--config {config}: no such file or directory (`runpoint config init` writes configs/base.yaml; "
                   "give the file that holds experiment.retention)", 2)
    loaded = load_config(config, profile, schema=ProjectConfig)
    scope = project if project is not None else loaded.experiment.project  # a project's policy covers its runs
    return retention.GcRule.from_policy(loaded.experiment.retention, scope), loaded.experiment.root


def _open_local(root: Path | str | None) -> Store:
    """The root's store; a store URL is refused before any connection is tried."""
    location = str(root) if root is not None else os.environ.get("RUNPOINT_ROOT", "")
    if "://" in location and not location.startswith("file://"):
        raise retention.not_local(location)
    return query.open_root(root)


def _rule(older_than: str | None, status: str | None, keep_tag: list[str] | None, keep_last: int | None,
          project: str | None, policy: bool, config: str, profile: str | None) -> tuple[retention.GcRule, str | None]:
    if policy:
        given = [name for name, value in (("--older-than", older_than), ("--status", status), ("--keep-tag", keep_tag),
                                          ("--keep-last", keep_last)) if value is not None]
        if given:
            raise fail(f"--policy takes the rule from the config's experiment.retention; drop {', '.join(given)}", 2)
        return _policy_rule(config, profile, project)
    if older_than is None:
        raise fail("say which runs: --older-than 30d (or --policy, for the config's experiment.retention)", 2)
    tags = ["keep"] if keep_tag is None else keep_tag
    return retention.GcRule.parse(older_than, status, tags, keep_last, project), None


def _plan_table(plan: retention.GcPlan) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("RUN", "PROJECT", "STATUS", "AGE", "SIZE", "CHECKPOINTS", "POINTS", "ACTION"):
        table.add_column(heading, no_wrap=True, justify="right" if heading in {"AGE", "SIZE", "CHECKPOINTS", "POINTS"}
                         else "left")
    table.add_column("REASON", overflow="fold")
    for entry in plan.entries:
        action = "[red]delete[/]" if entry.delete else "[green]keep[/]"
        table.add_row(entry.run.id, escape(entry.run.project), status_text(entry.run.status.value), format_age(entry.age_s),
                      size_text(entry.usage.total), size_text(entry.usage.checkpoints), str(entry.points), action,
                      escape(entry.reason))
    return table


def _summary(plan: retention.GcPlan) -> str:
    freed = plan.bytes_to_free()
    return (f"{len(plan.to_delete)} run(s) to delete, {size_text(freed.total)} (checkpoints "
            f"{size_text(freed.checkpoints)}, {sum(e.points for e in plan.to_delete)} metric points); "
            f"{len(plan.kept)} kept")


def _report(store: Store, plan: retention.GcPlan, leftovers: int, as_json: bool, dry_run: bool) -> None:
    if as_json:
        return
    if plan.entries:
        print_table(console, _plan_table(plan))
    else:
        err_console.print(f"no {plan.rule.describe()} in {store.location}", markup=False)
    if leftovers:
        err_console.print(f"{leftovers} leftover(s) of an interrupted gc {'would be' if dry_run else 'will be'} "
                          "finished", markup=False)
    err_console.print(_summary(plan) + (" (dry run: nothing deleted)" if dry_run else ""), markup=False)


def _plan_json(plan: retention.GcPlan, leftovers: int, result: retention.GcResult | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "rule": {"older_than_s": plan.rule.older_than_s, "statuses": [s.value for s in plan.rule.statuses],
                 "keep_tags": list(plan.rule.keep_tags), "keep_last": plan.rule.keep_last, "project": plan.rule.project},
        "runs": [entry.to_dict() for entry in plan.entries],
        "to_delete": [entry.run.id for entry in plan.to_delete],
        "bytes_to_free": plan.bytes_to_free().to_dict(),
        "leftovers": leftovers,
        "dry_run": result is None,
    }
    if result is not None:
        data.update(deleted=result.deleted, skipped=result.skipped, finished=result.finished)
    return data


def gc(  # long: one option per line
    older_than: Annotated[Optional[str], typer.Option("--older-than", help="Runs that ended longer ago than this: "
                                                      "30d, 12h, 90m, 2w, 1d12h.", show_default=False)] = None,
    status: Annotated[Optional[str], typer.Option("--status", "-s", help="Only these end statuses, comma separated: "
                                                  "completed, failed, killed, crashed. Default: all.",
                                                  show_default=False)] = None,
    keep_tag: Annotated[Optional[list[str]], typer.Option("--keep-tag", help="Keep runs with this tag (repeatable; "
                                                          "default: keep).", show_default=False)] = None,
    keep_last: Annotated[Optional[int], typer.Option("--keep-last", help="Keep the newest N runs of each project.",
                                                     show_default=False)] = None,
    project: ProjectOption = None,
    policy: Annotated[bool, typer.Option("--policy", help="Apply experiment.retention of the project config.")] = False,
    config: Annotated[str, typer.Option("--config", help="The config holding experiment.retention: a file or a "
                                        "directory with base.yaml.")] = "configs",
    profile: Annotated[Optional[str], typer.Option("--profile", help="Profile merged over --config.",
                                                   show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="List what would go; delete nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete old runs and their files; never a running run, a kept tag's, or one a model version came from."""
    rule, config_root = _rule(older_than, status, keep_tag, keep_last, project, policy, config, profile)
    if as_json and not (yes or dry_run):
        raise fail("--json needs --yes or --dry-run (a question would mix into the JSON)", 2)
    store = _open_local(root if root is not None or config_root is None else config_root)
    plan = retention.plan_gc(store, rule)
    leftovers = len(retention.trash_entries(retention.local_root(store)))
    _report(store, plan, leftovers, as_json, dry_run)
    if dry_run or not (plan.to_delete or leftovers):
        if as_json:
            print_json(_plan_json(plan, leftovers, None))
        return
    if not yes and not typer.confirm(f"Delete {len(plan.to_delete)} run(s) and their files?", default=False):
        raise fail("nothing deleted")
    result = retention.delete_runs(store, plan.to_delete)
    if as_json:
        print_json(_plan_json(plan, leftovers, result))
    else:
        err_console.print(f"deleted {len(result.deleted)} run(s)", markup=False)
        for run_id, why in result.skipped.items():
            err_console.print(f"kept {run_id} after all: {why}", markup=False)
    if result.left:
        raise fail("some files could not be deleted: " + "; ".join(result.left[:3]))


def _du_table(rows: list[Any], by: str) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    first = ("RUN", "PROJECT", "STATUS") if by == "run" else ("PROJECT", "RUNS")
    for heading in (*first, "CHECKPOINTS", "REGISTERED", "MEDIA", "LOGS", "OTHER", "TOTAL"):
        table.add_column(heading, no_wrap=True, justify="left" if heading in {"RUN", "PROJECT", "STATUS"} else "right")
    for row in rows:
        head = ((row.run.id, escape(row.run.project), status_text(row.run.status.value)) if by == "run"
                else (escape(row.project), str(row.runs)))
        usage = row.usage
        table.add_row(*head, *(size_text(n) for n in (usage.checkpoints, usage.registered, usage.media, usage.logs,
                                                      usage.other, usage.total)))
    return table


def du(
    project: ProjectOption = None,
    by: Annotated[str, typer.Option("--by", help="One row per run or per project.")] = "run",
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Bytes per run or project: checkpoints (registered ones apart), media, logs, other; largest first."""
    if by not in {"run", "project"}:
        raise InvalidArgumentError("by", f"{by!r}: use run or project")
    store = _open_local(root)
    runs = retention.usage_by_run(store, project)
    rows: list[Any] = runs if by == "run" else retention.usage_by_project(runs)
    summed = retention.total(runs)
    if as_json:
        print_json({"by": by, "rows": [row.to_dict() for row in rows], "total": summed.to_dict()})
        return
    if not rows:
        err_console.print("no runs" + (f" in project {project}" if project else ""), markup=False)
        return
    print_table(console, _du_table(rows, by))
    err_console.print(f"total {size_text(summed.total)} in {len(runs)} run(s): checkpoints "
                      f"{size_text(summed.checkpoints)} (registered {size_text(summed.registered)}), media "
                      f"{size_text(summed.media)}, logs {size_text(summed.logs)}, other {size_text(summed.other)}",
                      markup=False)


def register(app: typer.Typer) -> None:
    for command in (gc, du):
        app.command(command.__name__)(friendly_errors(command))
