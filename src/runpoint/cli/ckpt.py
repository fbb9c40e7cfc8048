"""``runpoint ckpt``: list, verify, prune and export checkpoints.

Each command takes a run (id, prefix, name or ``latest``: its checkpoints are found
through the store's registry) or a path: a checkpoints directory, one checkpoint
directory, or an fsspec URL.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from .. import query
from ._ckpt_rows import ls_on_server as _ls_on_server
from ._ckpt_rows import metrics_text as _metrics_text
from ._ckpt_rows import size_text as _size
from ._ckpt_rows import table as _table
from ._oserror import writing
from ._output import (
    JsonOption,
    RootOption,
    console,
    err_console,
    fail,
    fmt_time,
    friendly_errors,
    print_json,
)
from .ckpt_keys import KeyEnvOption, KeyFileOption, key_from

TargetArgument = Annotated[
    str, typer.Argument(help="A run (id, prefix, name or 'latest') or a checkpoints path / URL.", show_default=False)
]

app = typer.Typer(
    name="ckpt", help="List, verify, prune, export and re-encrypt checkpoints.", no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Target:
    """What a TARGET argument names: a directory of checkpoints, and the run when there is one."""

    def __init__(self, target: str, root: Path | None) -> None:
        self.run: Any = None
        self.store: Any = None
        self.outside_run = False  # a run's checkpoints that its registry places outside its directory
        self.run_dir = Path()
        if "://" in target or Path(target).exists():
            self.location = target
            return
        if "/" in target or target.startswith("."):
            raise fail(f"{target} does not exist (give a checkpoints directory, a run, or a URL)")
        from .. import query

        try:
            self.store = query.open_root(root)
        except Exception:
            raise fail(f"{target!r} is neither a path nor a run (no store found for runs)") from None
        self.run = query.resolve_run(self.store, target)
        if "://" in self.store.location:  # a team server's run: its files are on the server
            self.location = f"{self.store.location}/{self.run.dir}/checkpoints"
            return
        self.location = self._run_directory()

    on_server = property(lambda self: self.store is not None and "://" in self.store.location)

    def refuse_on_server(self, command: str) -> None:
        if self.on_server:
            raise fail(f"run {self.run.id} is on the server {self.store.location}: `runpoint ckpt {command}` works on "
                       "local files (resuming the run pulls its latest checkpoint; the dashboard's Verify checks it there)")

    def _run_directory(self) -> str:
        """The run's own ``checkpoints/`` when it has one; else where its registry says (``directory=``).

        The registry's absolute paths are not trusted over the run's directory: an imported
        run keeps the paths of the root it came from, which name another run's files.
        """
        from ..store import checkpoint_registry

        run_dir = self.run_dir = query.run_dir(self.store, self.run)
        own = run_dir / "checkpoints"
        if own.is_dir() and not own.is_symlink():
            return str(own)
        registry = checkpoint_registry(self.store)
        records = registry.list_checkpoints(self.run.id, include_deleted=True) if registry else []
        outside = [r.path for r in records if "://" in r.path or Path(r.path).is_absolute()]
        if outside:
            self.outside_run = True
            return outside[-1].rstrip("/").rsplit("/", 1)[0]
        return str(own)

    def refuse_deleting_outside(self) -> None:
        """gc by run deletes only in the run's own checkpoints directory; elsewhere the user names it."""
        if self.outside_run:
            raise fail(
                f"run {self.run.id}'s registry places its checkpoints in {self.location}, outside its directory; "
                f"nothing deleted (an imported run keeps the paths of its old root). If that directory is this "
                f"run's, prune it by path: runpoint ckpt gc {self.location} ..."
            )

    def registry(self) -> Any:
        from ..store import checkpoint_registry

        return checkpoint_registry(self.store) if self.store is not None else None


def _which(value: str) -> Any:
    if value in {"latest", "best"}:
        return value
    try:
        return int(value)
    except ValueError:
        raise fail(f"--which must be 'latest', 'best' or a step, got {value!r}", 2) from None


def ls(target: TargetArgument, root: RootOption = None,
       show_all: Annotated[bool, typer.Option("--all", help="Also list checkpoints that retention deleted.")] = False,
       as_json: JsonOption = False) -> None:
    """List the checkpoints of a run or a directory, oldest step first."""
    from ..artifacts.storage import open_artifacts
    from ..checkpoint.directory import CheckpointDirectory

    where = _Target(target, root)
    if where.on_server:
        return _ls_on_server(where, show_all, as_json)
    directory = CheckpointDirectory(open_artifacts(where.location))
    on_disk = {info.step: info for info in directory.refresh()}
    latest, best = directory.latest(), directory.best(None, "min")
    rows: list[dict[str, Any]] = []
    registry = where.registry()
    if where.run is not None and registry is not None:
        for record in registry.list_checkpoints(where.run.id, include_deleted=show_all):
            rows.append({
                "step": record.step, "path": record.path, "bytes": record.bytes, "created_at": record.created_at,
                "metrics": record.metrics, "best": record.is_best, "deleted": record.deleted_at is not None,
                "on_disk": record.step in on_disk,
            })
        _reconcile(where, directory, rows, registry, show_all)
        known = {row["step"] for row in rows}
        rows += [_disk_row(info, best) for step, info in on_disk.items() if step not in known]
        rows.sort(key=lambda row: row["step"])
    else:
        rows = [_disk_row(info, best) for info in on_disk.values()]
    for row in rows:
        row["latest"] = latest is not None and row["step"] == latest.step and not row["deleted"]
    if as_json:
        print_json({"directory": where.location, "run": where.run.id if where.run else None, "checkpoints": rows})
        return
    if not rows:
        err_console.print(f"no checkpoints in {where.location}", markup=False)
        return
    title = f"run {where.run.id}: " if where.run is not None else ""
    console.print(f"[bold]{escape(title)}{escape(str(where.location))}[/]")
    table = _table()
    for row in rows:
        flags = " ".join(f for f, on in (("latest", row["latest"]), ("best", row["best"])) if on)
        if row["deleted"]:
            flags = "[dim]deleted[/]"
        elif not row["on_disk"]:
            flags = (flags + " [bold red]missing[/]").strip()
        table.add_row(str(row["step"]), fmt_time(row["created_at"]), _size(row["bytes"]), flags,
                      escape(_metrics_text(row["metrics"])))
    console.print(table)
    for name, reason in directory.broken.items():
        err_console.print(f"unreadable: {name}: {reason}", markup=False)


def _reconcile(where: _Target, directory: Any, rows: list[dict[str, Any]], registry: Any, show_all: bool) -> None:
    """Registry rows of checkpoints gone from their directory are deleted ones, as the run's next
    start would record (a run killed during retention deleted the files, not yet the row).

    Recorded too, best effort: a store that cannot be written (a full disk) still lists.
    Rows stay "missing" when the directory itself is gone (an unmounted disk) or elsewhere.
    """
    import time

    from ..artifacts.manifest import checkpoint_name

    location = Path(where.location)
    if "://" in where.location or not location.is_dir():
        return
    for row in list(rows):
        if row["on_disk"] or row["deleted"]:
            continue
        name = checkpoint_name(row["step"])
        recorded = Path(row["path"]) if Path(row["path"]).is_absolute() else where.run_dir / row["path"]
        if recorded.name != name or recorded.parent != location or name in directory.broken:
            continue
        if os.path.lexists(location / name):  # there, but not committed: a save or a replacement under way
            continue
        row["deleted"] = True
        try:
            registry.mark_checkpoint_deleted(where.run.id, row["step"], time.time())
        except Exception:  # noqa: BLE001 - listing must not fail because the index cannot be written
            pass
        if not show_all:
            rows.remove(row)


def _disk_row(info: Any, best: Any) -> dict[str, Any]:
    return {"step": info.step, "path": info.path, "bytes": info.bytes, "created_at": info.created_at,
            "metrics": dict(info.metrics), "best": best is not None and best.step == info.step,
            "deleted": False, "on_disk": True}


def verify(target: TargetArgument, root: RootOption = None, as_json: JsonOption = False,
           key_env: KeyEnvOption = None, key_file: KeyFileOption = None) -> None:
    """Re-hash every file of each checkpoint against its manifest; exit 1 if any is corrupt.

    Encrypted checkpoints are checked without their key (sizes, hashes of the encrypted
    bytes); with --key-env/--key-file their manifests' MACs too, and every byte is decrypted.
    """
    from ..checkpoint.io import NOT_CHECKED
    from ..checkpoint.load import verify_checkpoint

    key = key_from(key_env, key_file)
    where = _Target(target, root)
    where.refuse_on_server("verify")
    results = verify_checkpoint(where.location, key=key)
    bad = [r for r in results if not r.ok]
    unchecked = [r for r in bad if all(p.startswith(NOT_CHECKED) for p in r.problems)]
    if as_json:
        print_json([{"path": r.path, "step": r.step, "ok": r.ok, "problems": r.problems} for r in results])
    else:
        for result in results:
            if result.ok:
                console.print(f"[green]ok[/]       {escape(result.path)}")
            else:
                label = "[yellow]unchecked[/]" if result in unchecked else "[bold red]corrupt[/]  "
                console.print(f"{label} {escape(result.path)}")
                for problem in result.problems:
                    console.print(f"           {escape(problem)}")
    if not results:
        raise fail(f"no checkpoints in {where.location}")
    if unchecked:
        err_console.print(f"{len(unchecked)} checkpoint(s) are encrypted with another key: not checked", markup=False)
    if len(bad) > len(unchecked):
        raise fail(f"{len(bad) - len(unchecked)} of {len(results)} checkpoint(s) are corrupt")
    if bad:
        raise fail("give the key they were saved with to check them (--key-env / --key-file), or none")
    if not as_json:
        err_console.print(f"{len(results)} checkpoint(s) verified", markup=False)


def gc(
    target: TargetArgument,
    root: RootOption = None,
    keep_last: Annotated[Optional[int], typer.Option("--keep-last", min=1, help="Keep the N most recent.")] = None,
    keep_best: Annotated[Optional[int], typer.Option("--keep-best", min=1, help="Keep the N best by --monitor.")] = None,
    monitor: Annotated[Optional[str], typer.Option("--monitor", help="Metric that ranks checkpoints (e.g. val/loss).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="min or max: which values of --monitor are better.")] = "min",
    keep_every: Annotated[Optional[int], typer.Option("--keep-every", min=1, help="Keep steps that are multiples of N.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="Only show what would be deleted.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Also prune a run that is still running.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Delete checkpoints a retention policy does not keep (never the latest, the best or a registered model's)."""
    from ..checkpoint.gc import apply_retention

    policy = _retention_policy(keep_last, keep_best, monitor, mode, keep_every)
    where = _Target(target, root)
    where.refuse_on_server("gc")
    where.refuse_deleting_outside()
    if where.run is not None and not force:
        _refuse_running(where.store, where.run)
    registered = _registered(where, root)
    plan = apply_retention(where.location, policy, monitor=monitor, mode=mode, dry_run=True,  # type: ignore[arg-type]
                           registered=registered)
    if as_json and dry_run:
        print_json({"keep": [c.step for c in plan.kept], "delete": [c.step for c in plan.to_delete]})
        return
    listing = err_console if as_json else console  # with --json, stdout holds the JSON alone
    for info in plan.to_delete:
        listing.print(f"  delete  step {info.step:>8}  {_size(info.bytes):>10}  {escape(info.name)}")
    if not plan.to_delete:
        err_console.print(f"nothing to delete: all {len(plan.kept)} checkpoint(s) are kept", markup=False)
    if dry_run or not plan.to_delete:
        if dry_run and plan.to_delete:
            err_console.print(f"(dry run: {len(plan.to_delete)} would be deleted, {len(plan.kept)} kept)", markup=False)
        return
    if not yes and not typer.confirm(f"Delete {len(plan.to_delete)} checkpoint(s)?", default=False, err=as_json):
        raise fail("nothing deleted")
    # the plan again, as the checkpoints may have changed while we asked: only what was shown goes
    result = apply_retention(where.location, policy, monitor=monitor, mode=mode,  # type: ignore[arg-type]
                             on_deleted=_deletion_recorder(where), only=plan.to_delete, registered=registered)
    if as_json:
        print_json({"deleted": [c.step for c in result.deleted], "skipped": [c.step for c in result.skipped],
                    "kept": [c.step for c in result.kept], "leftovers": result.leftovers,
                    "unconfirmed": [c.step for c in result.unconfirmed]})
        return
    _print_gc_result(result, listed=len(plan.to_delete))


def _registered(where: _Target, root: Path | None) -> Callable[[], set[int]] | None:
    """What asks which steps registered model versions use: by the run, else by the directory in the root's registry."""
    from ..store import registered_steps

    if where.run is not None:
        return lambda: registered_steps(where.store, where.run.id)
    try:
        store = query.open_root(root)
    except Exception:  # noqa: BLE001 - a directory outside any root: no registry names it
        return None
    from ..models.runs import registered_steps_in

    return lambda: registered_steps_in(store, where.location)


def _retention_policy(keep_last: int | None, keep_best: int | None, monitor: str | None, mode: str,
                      keep_every: int | None) -> Any:
    """The policy gc's options describe; exit 2 when they describe none or an invalid one."""
    from ..checkpoint.policy import retention_from_keywords
    from ..errors import InvalidArgumentError

    if keep_last is None and keep_best is None and keep_every is None:
        raise fail("say what to keep: --keep-last N, --keep-best N --monitor KEY and/or --keep-every N", 2)
    if mode not in ("min", "max"):
        raise fail(f"--mode must be 'min' or 'max', got {mode!r}", 2)
    try:
        return retention_from_keywords(keep_last, keep_best, monitor, mode, keep_every)  # type: ignore[arg-type]
    except InvalidArgumentError as exc:
        raise fail(str(exc), 2) from None


def _refuse_running(store: Any, run: Any) -> None:
    from ..run.liveness import run_is_dead
    from ..store import RunStatus

    if run.status is RunStatus.RUNNING and run_is_dead(store, run) is None:
        raise fail(f"run {run.id} is still running and manages its checkpoints; pass --force to prune anyway")


def _deletion_recorder(where: _Target) -> Callable[[Any], None]:
    """Marks each checkpoint gc deletes as deleted in the run's registry (when there is one)."""
    registry = where.registry()
    run_id = where.run.id if where.run is not None else None

    def record(info: Any) -> None:
        if registry is not None and run_id is not None:
            import time

            registry.mark_checkpoint_deleted(run_id, info.step, time.time())

    return record


def _print_gc_result(result: Any, listed: int) -> None:
    """What gc deleted, skipped and left, against the ``listed`` checkpoints the user was shown."""
    freed = sum(c.bytes for c in result.deleted)
    err_console.print(f"deleted {len(result.deleted)} checkpoint(s), freed {_size(freed)}", markup=False)
    if result.skipped:
        err_console.print(f"skipped {len(result.skipped)} being read by another process", markup=False)
    left = listed - len(result.deleted) - len(result.skipped)
    if left:
        err_console.print(f"{left} of those listed not deleted: gone or kept by the policy now", markup=False)
    if result.unconfirmed:
        err_console.print(f"kept {len(result.unconfirmed)} more that the policy drops now: the checkpoints changed "
                          "since the list was shown (run gc again to review them)", markup=False)


def export(
    target: TargetArgument,
    out: Annotated[str, typer.Argument(help="The .safetensors file to write.", show_default=False)],
    root: RootOption = None,
    which: Annotated[str, typer.Option("--which", help="best, latest or a step.")] = "best",
    key: Annotated[Optional[str], typer.Option("--key", help="The module in the state (default: model).")] = None,
    key_env: KeyEnvOption = None, key_file: KeyFileOption = None,
) -> None:
    """Write one checkpoint's model weights alone as a safetensors file, for deployment."""
    from ..checkpoint import export as _export
    from ..checkpoint.io import SafetensorsIO
    from ..checkpoint.load import locate

    where = _Target(target, root)
    where.refuse_on_server("export")
    storage, name = locate(where.location, _which(which))
    io = SafetensorsIO(encrypt=key_from(key_env, key_file))
    weights, manifest = _export.checkpoint_weights(storage, name, io, key)
    with writing(out, "choose another output file"):
        written = _export.write_weights(out, weights, {"format": "pt", "step": str(manifest.step),
                                                       "source": storage.display(name)})
    err_console.print(f"wrote {len(weights)} tensors of step {manifest.step} to {written}", markup=False)


def register(main: typer.Typer) -> None:
    from . import ckpt_keys

    for command in (ls, verify, gc, export):
        app.command(command.__name__)(friendly_errors(command))
    ckpt_keys.register(app)
    main.add_typer(app, name="ckpt")
