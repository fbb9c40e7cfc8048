"""Deleting runs so that a crash at any instant leaves a root every reader can use.

A run is two things: its rows in the store and its directory ``<root>/<project>/<run id>``.
They cannot go in one atomic step, so gc orders the steps such that no reader ever meets
a row whose directory is half deleted:

1. Check the run again, just before: a run that is ``running`` now (resumed since it was
   listed) or that a model version was registered from since, is skipped.
2. ``rename`` the directory to ``<root>/.runpoint-trash/<run id>.<random>``: one atomic
   rename on one file system (the trash is inside the root), then ``fsync`` of both parents
   so the move is on disk before the row goes.
3. Delete the run's rows: one store transaction (:meth:`Store.delete_run`).
4. Remove the trash entry.

What a crash leaves, and what readers see meanwhile:

- between 2 and 3: the row, and no directory, as for a run whose files were never written
  (``runpoint show`` works, the run has no checkpoints or media), never half a directory;
- between 3 and 4, or during 4: no row, and a (partial) trash entry no reader looks at.

The next gc (:func:`finish_interrupted`, run before anything else) rolls every trash entry
forward: the gc that moved it had decided, and been confirmed, to delete the run, so the
row (if still there) is deleted and the entry removed. The one exception is a run that is
live again (resumed in the window between 1 and 2): its directory is moved back when its
place is free.

Example::

    plan = plan_gc(store, GcRule.parse("30d"))
    result = delete_runs(store, plan.to_delete)
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .._util.fs import fsync_dir
from ..errors import RunNotFoundError
from ..query import run_dir
from ..run.liveness import reap_crashed
from ..store import RunStatus, Store
from .selection import GcEntry, local_root, registered_reason

TRASH_DIR = ".runpoint-trash"
log = logging.getLogger("runpoint.retention")


@dataclass
class GcResult:
    """What a gc did: runs deleted, runs skipped at the last check (id -> why), trash entries finished."""

    deleted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # files that could not be removed


def trash_entries(root: Path) -> list[Path]:
    """The leftovers of interrupted gcs in ``root``."""
    trash = root / TRASH_DIR
    try:
        return sorted(trash.iterdir())
    except FileNotFoundError:
        return []


def _remove(path: Path, left: list[str]) -> None:
    shutil.rmtree(path, onerror=lambda _f, where, exc: left.append(f"{where}: {exc[1]}"))


def _live(store: Store, run_id: str) -> bool:
    try:
        run = store.get_run(run_id)
    except RunNotFoundError:
        return False
    return reap_crashed(store, [run])[0].status is RunStatus.RUNNING


def finish_interrupted(store: Store, result: GcResult | None = None) -> GcResult:
    """Finish what interrupted gcs left in the trash: delete their runs' rows, then the files."""
    result = GcResult() if result is None else result
    root = local_root(store)
    for entry in trash_entries(root):
        run_id = entry.name.rpartition(".")[0] or entry.name
        if _live(store, run_id):
            home = run_dir(store, store.get_run(run_id))
            if not home.exists():
                os.rename(entry, home)
                log.warning("run %s is running again: its directory is back from the trash", run_id)
            continue
        try:
            store.delete_run(run_id)
        except RunNotFoundError:
            pass  # the gc got as far as the rows
        _remove(entry, result.left)
        result.finished.append(run_id)
    return result


def _why_not(store: Store, run_id: str) -> str | None:
    """Why a listed run must not be deleted now, or None."""
    try:
        run = reap_crashed(store, [store.get_run(run_id)])[0]
    except RunNotFoundError:
        return "deleted by someone else meanwhile"
    if run.status is RunStatus.RUNNING:
        return f"running again (pid {run.pid} on {run.host})"
    return registered_reason(store, run_id)


def delete_run_files_last(store: Store, entry: GcEntry, root: Path, result: GcResult) -> None:
    """Steps 1 to 4 of the module docstring for one run."""
    run = entry.run
    why = _why_not(store, run.id)
    if why is not None:
        result.skipped[run.id] = why
        return
    directory = run_dir(store, run)
    trash = root / TRASH_DIR
    moved = trash / f"{run.id}.{secrets.token_hex(4)}"
    if directory.exists():
        trash.mkdir(exist_ok=True)
        os.rename(directory, moved)
        fsync_dir(trash)
        fsync_dir(directory.parent)
        why = _why_not(store, run.id)  # resumed while we moved it: put it back
        if why is not None and not directory.exists():
            os.rename(moved, directory)
            result.skipped[run.id] = why
            return
    try:
        store.delete_run(run.id)
    except RunNotFoundError:
        pass  # another gc deleted the rows meanwhile
    if moved.exists():
        _remove(moved, result.left)
    result.deleted.append(run.id)


def delete_runs(store: Store, entries: list[GcEntry]) -> GcResult:
    """Delete the runs of ``entries`` (a plan's ``to_delete``), after finishing interrupted gcs."""
    root = local_root(store)
    result = finish_interrupted(store)
    for entry in entries:
        delete_run_files_last(store, entry, root, result)
    trash = root / TRASH_DIR
    if trash.is_dir() and not any(trash.iterdir()):
        trash.rmdir()
    return result
