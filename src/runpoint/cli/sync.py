"""``runpoint sync``: send runs recorded locally to a team server, idempotently.

    runpoint sync --all                                  the spool of $RUNPOINT_ROOT=https://… (runs a process left behind)
    runpoint sync RUN                                    one run (an id prefix or a name)
    runpoint sync --all --root ./runpoint --to https://runs.example.com    migrate a local root into a server
    runpoint sync --status                               what is pending, run by run

Syncing twice stores once: each pass asks the server what it holds and sends the rest.
The token comes from ``$RUNPOINT_TOKEN``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..artifacts.paths import ROOT_ENV, resolve_root
from ..errors import RunpointError
from ..store import RunRecord, Store, open_store
from ..sync import SyncReport, SyncState, sync_run
from ..sync.remote_root import connect
from ..sync.spool import is_server_url, server_base, server_of, spool_root
from ._output import JsonOption, RootOption, console, fail, friendly_errors, print_json
from ._tables import print_table


def _endpoints(root: Path | None, to: str | None) -> tuple[Path, str]:
    """The local root to read and the server to send to."""
    env = os.environ.get(ROOT_ENV)
    if root is not None and is_server_url(os.fspath(root)):
        raise fail("--root is the local root to send from; give the server with --to", 2)
    if root is None and env and is_server_url(env):
        server = server_base(to or env)
        return spool_root(server_base(env)), server
    local = resolve_root(root)
    destination = to or server_of(local)
    if destination is None:
        raise fail(f"{local} is not a server's spool: say where to send it with --to https://… "
                   "(or set RUNPOINT_ROOT=https://… to sync that server's spool)", 2)
    return local, server_base(destination)


def _runs(store: Store, run: str | None, all_: bool) -> list[RunRecord]:
    if run is not None:
        matches = store.find_runs(run)
        if len(matches) != 1:
            raise fail(f"{'no run' if not matches else f'{len(matches)} runs'} match {run!r}" +
                       (": give more of the id" if matches else ""))
        return matches
    if not all_:
        raise fail("name a run, or pass --all", 2)
    return sorted(store.list_runs(), key=lambda r: r.created_at)


def _settled(state: SyncState, record: RunRecord) -> bool:
    """True when the run was sent whole and has not changed since (it ended, and was not resumed)."""
    known = state.run(record.id)
    return known.done and record.status.is_final and known.resume_count == record.resume_count


def sync(
    run: Annotated[Optional[str], typer.Argument(help="The run to send (id prefix or name).", show_default=False)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every run of the root that the server lacks or that changed.")] = False,
    to: Annotated[Optional[str], typer.Option("--to", help="The server: https://host:port. Default: the spool's own server.",
                                              show_default=False)] = None,
    status: Annotated[bool, typer.Option("--status", help="Show what is pending instead of sending.")] = False,
    root: RootOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send runs recorded locally (offline, or left behind by a process) to a team server."""
    local, server = _endpoints(root, to)
    store, state = open_store(local, create=False), SyncState(local)
    if status:
        return _show_status(store, state, server, local, as_json)
    rows, failed = [], 0
    target = connect(server)
    for record in _runs(store, run, all_):
        if run is None and _settled(state, record):
            continue
        row = _sync_one(store, local, state, target, record)
        failed += row["result"] == "error"
        rows.append(row)
    _print(rows, server, as_json)
    if failed:
        raise typer.Exit(1)


def _sync_one(store: Store, local: Path, state: SyncState, target: Any, record: RunRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"run": record.id, "project": record.project, "name": record.name}
    with state.lock(record.id) as held:
        if not held:
            return {**row, "result": "skipped", "detail": "its own process is sending it"}
        try:
            report = sync_run(store, local, state, target, record.id, final=True)
        except RunpointError as exc:
            state.update(record.id, error=str(exc)[:500])
            return {**row, "result": "error", "detail": str(exc).splitlines()[0]}
    return {**row, **_counts(report), "result": "complete" if report.complete else "sent (still running)"}


def _counts(report: SyncReport) -> dict[str, Any]:
    return {"points": report.points, "media": report.media, "files": report.files, "bytes": report.bytes,
            "checkpoints": report.checkpoints, "created": report.created}


def _print(rows: list[dict[str, Any]], server: str, as_json: bool) -> None:
    if as_json:
        return print_json({"server": server, "runs": rows})
    if not rows:
        console.print(f"Nothing to send to {server}: every run is there.")
        return
    table = Table(title=f"sent to {escape(server)}", title_justify="left")
    for column in ("run", "project", "points", "media", "files", "checkpoints", "result"):
        table.add_column(column, justify="right" if column in ("points", "media", "files", "checkpoints") else "left",
                         no_wrap=column in ("run", "project"))
    for row in rows:
        result = row["result"] + (f": {row['detail']}" if row.get("detail") else "")
        table.add_row(row["run"], row["project"], *(str(row.get(c, "")) for c in ("points", "media", "files", "checkpoints")),
                      escape(result))
    print_table(console, table)


def _show_status(store: Store, state: SyncState, server: str, local: Path, as_json: bool) -> None:
    try:
        remote: Store | None = connect(server).store
        remote.count_runs()  # type: ignore[union-attr]
        reach = None
    except RunpointError as exc:
        remote, reach = None, str(exc).splitlines()[0]
    rows = [_status_row(store, state, remote, record) for record in sorted(store.list_runs(), key=lambda r: r.created_at)]
    if as_json:
        return print_json({"server": server, "root": str(local), "reachable": reach is None, "error": reach, "runs": rows})
    table = Table(title=f"{escape(str(local))} → {escape(server)}" + ("" if reach is None else f"  (unreachable: {escape(reach)})"),
                  title_justify="left")
    for column in ("run", "project", "status", "pending points", "last sync", "state"):
        table.add_column(column, justify="right" if column == "pending points" else "left",
                         no_wrap=column in ("run", "project", "status"))
    for row in rows:
        synced = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(row["synced_at"])) if row["synced_at"] else "never"
        pending = "?" if row["pending_points"] is None else str(row["pending_points"])
        table.add_row(row["run"], row["project"], row["status"], pending, synced, escape(row["state"]))
    print_table(console, table)


def _status_row(store: Store, state: SyncState, remote: Store | None, record: RunRecord) -> dict[str, Any]:
    known = state.run(record.id)
    pending = None
    if remote is not None:
        local_counts = {k: s.count for k, s in store.metric_stats(record.id).items()}
        try:
            remote_counts = {k: s.count for k, s in remote.metric_stats(record.id).items()}
        except RunpointError:
            remote_counts = {}
        pending = sum(max(0, n - remote_counts.get(k, 0)) for k, n in local_counts.items())
    if _settled(state, record) and not pending:
        label = "on the server"
    elif known.error:
        label = f"pending (last try: {known.error.splitlines()[0][:80]})"
    else:
        label = "pending" if known.synced_at or not known.done else "on the server"
    return {"run": record.id, "project": record.project, "status": record.status.value, "pending_points": pending,
            "synced_at": known.synced_at, "done": known.done, "state": label}


def register(app: typer.Typer) -> None:
    app.command("sync")(friendly_errors(sync))

