"""Bringing a server's run into the spool, so that ``rp.init(resume=…)`` works on any machine.

A job preempted on one node resumes on another whose spool has never seen the run. Before
the resume, :func:`pull_for_resume` asks the server which run the resume means; when the
spool lacks it, :func:`pull_run` copies the run's record, params, meta, summary and metric
points, its files (config, meta, console logs), its checkpoint registry and the latest
checkpoint's files, and notes all of it as already on the server, so nothing is sent back.

Example::

    pull_for_resume(connect(server), spool, store, project="mnist", resume="latest", run_id=None)
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..errors import RunNotFoundError, RunpointError
from ..store.base import RunQuery, Store, WriteBatch
from ..store.registry import checkpoint_registry
from .push import FileTarget, SyncTarget
from .state import SyncState

logger = logging.getLogger("runpoint")


def pull_for_resume(
    target: SyncTarget, root: Path, store: Store, *, project: str, resume: str, run_id: str | None
) -> str | None:
    """Pull the run a resume names when the spool lacks it; its id, or None when nothing was pulled.

    Never fails the caller for the server's sake: unreachable, the resume goes on with the spool.
    """
    try:
        wanted = _wanted(target.store, project, resume, run_id)
        if wanted is None:
            return None
        try:
            store.get_run(wanted)
            return None  # already here (this machine recorded it, or pulled it before)
        except RunNotFoundError:
            pass
        pull_run(target, root, store, wanted)
        return wanted
    except RunpointError as exc:
        logger.warning("runpoint: could not ask the server about the run to resume (%s); resuming from %s",
                       str(exc).splitlines()[0], root)
        return None


def _wanted(remote: Store, project: str, resume: str, run_id: str | None) -> str | None:
    if resume in ("latest", "allow") and run_id is None:
        runs = remote.list_runs(RunQuery(project=project, limit=1))
        return runs[0].id if runs else None
    wanted = run_id if resume == "allow" else resume
    try:
        return remote.get_run(wanted).id if wanted else None
    except RunNotFoundError:
        return None


def pull_run(target: SyncTarget, root: Path, store: Store, run_id: str) -> None:
    """Copy ``run_id`` from the server into the local root ``root`` (see the module docstring)."""
    remote = target.store
    record = remote.get_run(run_id)
    store.create_run(record, remote.get_params(run_id), remote.get_meta(run_id))
    try:
        metrics = {key: remote.read_metric(run_id, key) for key in remote.metric_keys(run_id)}
        store.write(run_id, WriteBatch(metrics=metrics, summary=remote.get_summary(run_id), tags=record.tags))
        state = SyncState(root)
        state.update(run_id, resume_count=record.resume_count, done=int(record.status.is_final))
        if target.files is not None:
            _pull_files(target, store, root / record.dir, state, run_id)
    except BaseException:  # half a run would resume with half its history: none, and the next try pulls again
        store.delete_run(run_id)
        shutil.rmtree(root / record.dir, ignore_errors=True)
        raise


def _pull_files(target: SyncTarget, store: Store, run_dir: Path, state: SyncState, run_id: str) -> None:
    files = target.files
    assert files is not None
    for path, _ in files.list(run_id, ""):
        if not path.startswith(("checkpoints/", "media/")):
            _fetch(files, state, run_id, run_dir, path)
    remote_registry, local_registry = target.registry, checkpoint_registry(store)
    if remote_registry is None or local_registry is None:
        return
    live = [r for r in remote_registry.list_checkpoints(run_id) if r.deleted_at is None]
    for record in live:
        local_registry.add_checkpoint(record)
    latest = max(live, key=lambda r: r.step, default=None)
    if latest is None or "://" in latest.path:
        return
    for path, _ in files.list(run_id, latest.path.rstrip("/") + "/"):
        _fetch(files, state, run_id, run_dir, path)
    for path, _ in files.list(run_id, "checkpoints/"):
        if path.count("/") == 1:  # the latest/best pointer files
            _fetch(files, state, run_id, run_dir, path)


def _fetch(files: FileTarget, state: SyncState, run_id: str, run_dir: Path, rel: str) -> None:
    destination = run_dir / rel
    destination.parent.mkdir(parents=True, exist_ok=True)
    files.download(run_id, rel, destination)
    info = destination.stat()
    state.file_sent(run_id, rel, info.st_size, info.st_mtime_ns)
