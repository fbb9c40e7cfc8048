"""Creating, resuming and joining the run behind ``rp.init``.

:func:`open_run` is what a single process (and rank 0 of a multi-rank job) does: create a
new run or resume one, with every check. :func:`join_run` is what the other ranks of a job
do once rank 0 has: open the same run without writing its config, params or meta.
:mod:`runpoint.run.start` validates the arguments; :mod:`runpoint.run._job` coordinates
the ranks.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._util.fs import write_atomic
from .._util.ids import is_valid_identifier, new_run_id, new_run_name
from ..artifacts.paths import RunPaths
from ..config import config_hash, flatten
from ..errors import (
    ConfigError,
    InvalidArgumentError,
    RunExistsError,
    RunNotFoundError,
    RunpointError,
    StoreError,
)
from ..logs.redact import Redactor
from ..logs.run_log import emit
from ..store import RunQuery, RunRecord, RunStatus, Store
from ..store.base import RankRecord
from . import metadata
from .console import ConsoleCapture
from .liveness import reap_crashed, run_is_dead
from .ranks import RankRole
from .run import Run
from .run_log import start_run_log

logger = logging.getLogger("runpoint")


@dataclass
class OpenRequest:
    """What ``rp.init`` was asked for, checked: everything but which run."""

    store: Store
    root: Path
    project: str
    name: str | None
    masked: dict[str, Any]
    tags: tuple[str, ...]
    notes: str
    group: str | None
    console: bool
    flush_interval: float
    console_segment_bytes: int | None = None  # None: never rotate
    redactor: Redactor | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # added to meta.json (a job's "distributed" section)


def check_identifier(argument: str, value: Any) -> None:
    if not isinstance(value, str) or not is_valid_identifier(value):
        raise InvalidArgumentError(
            argument, f"{value!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def open_run(request: OpenRequest, resume: str | None, run_id: str | None, role: RankRole | None = None) -> Run:
    """Create the run, or resume the one ``resume`` names; ``role``: rank 0 of a job, whose row is registered."""
    if resume == "allow":
        resume = _resumable(request.store, request.project, run_id)
    if resume is not None:
        if run_id is not None and run_id != resume:
            raise InvalidArgumentError("id", f"conflicts with resume={resume!r}; give one of them")
        return _resume(request, resume, role)
    return _create(request, run_id, role)


def write_config(path: Path, run_id: str, masked: dict[str, Any]) -> None:
    from .._util.yaml import run_config_text

    write_atomic(path, run_config_text(masked, f"# runpoint: the config of run {run_id} as it ran (secrets masked)\n"))


def _meta_for_store(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key != "packages"}  # meta.json keeps them


def _start_console(paths: RunPaths, resume_count: int, request: OpenRequest, rank: int = 0) -> ConsoleCapture | None:
    """``logs/runpoint.log`` (always), and the console capture when it is on."""
    start_run_log(paths, request.redactor, rank)
    if not request.console:
        return None
    capture = ConsoleCapture(paths.console_log(resume_count, rank), segment_bytes=request.console_segment_bytes,
                             redactor=request.redactor, run_id=paths.run_id)
    capture.start()
    return capture


def _register(store: Store, run_id: str, role: RankRole | None, *, reset: bool) -> None:
    if role is not None:
        now = time.time()
        store.register_rank(RankRecord(run_id=run_id, rank=role.rank, host=socket.gethostname(), pid=os.getpid(),
                                       started_at=now, heartbeat_at=now, job=role.job), reset=reset)


def _create(request: OpenRequest, run_id: str | None, role: RankRole | None) -> Run:
    store, masked = request.store, request.masked
    if run_id is not None:
        check_identifier("id", run_id)
    run_id = run_id or new_run_id()
    paths = RunPaths(request.root, request.project, run_id)
    try:
        store.get_run(run_id)
    except RunNotFoundError:
        pass
    else:
        raise RunExistsError(run_id, paths.dir)
    paths.dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        paths.dir.mkdir()
    except FileExistsError:
        raise RunExistsError(run_id, paths.dir) from None
    try:
        paths.logs.mkdir()
        params = flatten(masked)
        write_config(paths.config, run_id, masked)
        meta = {**metadata.capture(paths.dir, params), **request.meta}
        write_atomic(paths.meta, json.dumps(meta, indent=2, default=str))
        now = time.time()
        record = RunRecord(
            id=run_id, project=request.project, name=request.name or new_run_name(store.count_runs(request.project) + 1),
            status=RunStatus.RUNNING, created_at=now, heartbeat_at=now, dir=paths.relative_dir,
            notes=request.notes, tags=request.tags, group=request.group, config_hash=config_hash(masked),
            host=socket.gethostname(), pid=os.getpid(),
        )
        store.create_run(record, params, meta=_meta_for_store(meta))
        _register(store, run_id, role, reset=True)
    except BaseException as exc:
        shutil.rmtree(paths.dir, ignore_errors=True)  # we created it: leave nothing half-made
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise StoreError(
                f"could not create run {run_id} in {paths.dir}: no space left on the disk ({exc.filename}); "
                "free some space and start again", paths.dir,
            ) from exc
        raise
    return Run(
        store=store, paths=paths, name=record.name, config=masked, tags=request.tags, notes=request.notes,
        group=request.group, resume_count=0, next_step=0, summary={}, meta=meta,
        console=_start_console(paths, 0, request), flush_interval=request.flush_interval, role=role,
    )


def _resumable(store: Store, project: str, run_id: str | None) -> str | None:
    """For ``resume="allow"``: the id of the run to resume, or None to start one."""
    if run_id is None:
        runs = store.list_runs(RunQuery(project=project, limit=1))
        return runs[0].id if runs else None
    check_identifier("id", run_id)
    try:
        store.get_run(run_id)
    except RunNotFoundError:
        return None
    return run_id


def find_for_resume(store: Store, root: Path, project: str, resume: str) -> RunRecord:
    """The run ``resume`` names in ``project`` ("latest", an id or a name), as ``rp.init(resume=...)`` finds it."""
    if resume == "latest":
        runs = store.list_runs(RunQuery(project=project, limit=1))
        if not runs:
            raise RunNotFoundError("latest", root, hint=f"project {project!r} has no runs to resume")
        return runs[0]
    check_identifier("resume", resume)
    record = store.get_run(resume)
    if record.project != project:
        raise InvalidArgumentError(
            "resume", f"run {resume!r} belongs to project {record.project!r}, not {project!r}"
        )
    return record


def _resume(request: OpenRequest, resume: str, role: RankRole | None) -> Run:  # long: the steps of a resume, in order
    store, masked = request.store, request.masked
    record = find_for_resume(store, request.root, request.project, resume)
    if record.status is RunStatus.RUNNING:
        if run_is_dead(store, record) is None:
            raise RunpointError(
                f"run {record.id} is still running (pid {record.pid} on {record.host}); "
                "stop it before resuming, or wait for its heartbeat to go stale"
            )
        reap_crashed(store, [record])
    record = store.reopen_run(record.id, host=socket.gethostname(), pid=os.getpid(), now=time.time())
    stats = store.metric_stats(record.id)
    next_step = max((s.last_step for s in stats.values()), default=-1) + 1
    paths = RunPaths(request.root, request.project, record.id)
    paths.logs.mkdir(parents=True, exist_ok=True)
    meta = read_meta(paths)
    attempt = metadata.capture(paths.dir, flatten(masked) if masked else store.get_params(record.id))
    meta.setdefault("resumes", []).append(
        {key: attempt[key] for key in ("host", "pid", "argv", "cwd", "git", "started_at")}
    )
    meta.update(request.meta)
    if isinstance(meta.get("distributed"), dict):  # where the other ranks' run.step starts (see join_run)
        meta["distributed"] = {**meta["distributed"], "start_step": next_step}
    write_atomic(paths.meta, json.dumps(meta, indent=2, default=str))
    _register(store, record.id, role, reset=True)  # after meta.json: a rank that sees the row reads it
    config = masked
    if masked and config_hash(masked) != record.config_hash:
        changed = paths.dir / f"config_resume_{record.resume_count}.yaml"
        emit(logger, logging.WARNING, "run.config_changed",
             "runpoint: run %s resumes with a different config than it started with; "
             "the new one is saved as %s, params keep the original", record.id, changed.name,
             run_id=record.id, path=changed.name)
        write_config(changed, record.id, masked)
    elif not masked:
        config = read_config(paths)
    run = Run(
        store=store, paths=paths, name=record.name, config=config, tags=record.tags, notes=record.notes,
        group=record.group, resume_count=record.resume_count, next_step=next_step,
        summary=store.get_summary(record.id), meta=meta,
        console=_start_console(paths, record.resume_count, request), flush_interval=request.flush_interval,
        stored_steps={key: s.last_step for key, s in stats.items()}, role=role,
    )
    new_tags = tuple(tag for tag in request.tags if tag not in record.tags)
    if new_tags:
        run.add_params({}, new_tags)
        run.tags = record.tags + new_tags
    return run


def join_run(request: OpenRequest, run_id: str, role: RankRole, next_step: int | None) -> Run:
    """Open the run rank 0 created or resumed, as rank ``role.rank``: its row, its console log, nothing else written."""
    store = request.store
    record = store.get_run(run_id)
    _register(store, run_id, role, reset=False)
    paths = RunPaths(request.root, record.project, run_id)
    stats = store.metric_stats(run_id)
    meta = read_meta(paths)
    if next_step is None:  # no group to hear it from: rank 0 wrote it to meta.json before its row
        start = meta.get("distributed", {}).get("start_step")
        next_step = start if isinstance(start, int) else max((s.last_step for s in stats.values()), default=-1) + 1
    mine = {key: s.last_step for key, s in stats.items() if role.suffix and key.endswith(role.suffix)}
    return Run(
        store=store, paths=paths, name=record.name, config=request.masked or read_config(paths), tags=record.tags,
        notes=record.notes, group=record.group, resume_count=record.resume_count, next_step=next_step,
        summary=store.get_summary(run_id), meta=meta,
        console=_start_console(paths, record.resume_count, request, role.rank),
        flush_interval=request.flush_interval, stored_steps=mine, role=role,
    )


def read_meta(paths: RunPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_config(paths: RunPaths) -> dict[str, Any]:
    from .._util.yaml import read_yaml_file

    try:
        loaded = read_yaml_file(paths.config)
    except ConfigError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
