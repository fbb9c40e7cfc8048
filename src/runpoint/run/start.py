"""``runpoint.init``: creating a new run, or resuming an existing one."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from .._util.fs import write_atomic
from .._util.ids import is_valid_identifier, new_run_id, new_run_name
from ..artifacts.paths import RunPaths, resolve_root
from ..config import config_hash, flatten, mask_secrets, to_plain
from ..diagnostics import system
from ..errors import (
    ConfigError,
    InvalidArgumentError,
    RunExistsError,
    RunNotFoundError,
    RunpointError,
    StoreError,
)
from ..sinks.hub import SinkHub
from ..sinks.select import select_sinks
from ..store import RunQuery, RunRecord, RunStatus, Store, open_store
from . import metadata
from .console import ConsoleCapture
from .liveness import is_dead, reap_crashed
from .run import Run

logger = logging.getLogger("runpoint")

CONSOLE_ENV = "RUNPOINT_CONSOLE"


EXPERIMENT_FIELDS = ("project", "name", "group", "tags", "notes", "root")


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: Iterable[str] | None = None,
    notes: str | None = None,
    root: str | os.PathLike[str] | None = None,
    resume: str | None = None,
    *,
    id: str | None = None,
    group: str | None = None,
    console: bool | None = None,
    flush_interval: float = 0.5,
    system_metrics: float | bool | None = None,
    sinks: Sequence[Any] | None = None,
) -> Run:
    """Start recording a run, or continue one with ``resume``.

    ``project``, ``name``, ``group``, ``tags``, ``notes`` and ``root`` that are not passed
    are taken from the config's ``experiment`` section when it has them (as
    :class:`~runpoint.ProjectConfig` does); ``project`` is required one way or the other.

    Args:
        project: groups runs; letters, digits, ``. _ -``.
        name: a readable name; one like ``swift-heron-7`` is made up when None.
        config: a dict, pydantic model (e.g. from ``rp.load_config``), dataclass or
            argparse Namespace. Stored whole in ``config.yaml`` and flattened
            (``training.learning_rate``) as searchable params; secrets (token, password,
            secret, api_key ..., pydantic ``SecretStr``) are masked.
        tags, notes: free-form labels and text.
        root: where runs live; ``$RUNPOINT_ROOT`` or ``./runpoint`` when None.
        resume: ``"<run id>"`` or ``"latest"`` (of ``project``) to append to that run;
            ``"allow"`` resumes the run ``id`` (or, without ``id``, the latest of
            ``project``) if there is one, else starts a new run, as W&B's ``resume="allow"``.
        id: a run id of your choosing; an existing one raises ``RunExistsError`` (unless
            ``resume="allow"``).
        group: groups runs of one sweep or study.
        console: capture stdout/stderr to ``logs/``; default on (``RUNPOINT_CONSOLE=0`` turns it off).
        flush_interval: seconds between the writer's flushes; a SIGKILL loses at most this
            much plus the time one write takes (the writer holds back a faster caller).
        system_metrics: seconds between samples of CPU, memory, disk, network and GPU use
            (:mod:`runpoint.diagnostics.system`), or False for none; default: the config's
            ``experiment.log_system_metrics`` / ``system_metrics_interval`` where it sets
            them, else ``$RUNPOINT_SYSTEM_METRICS``, else 10.
        sinks: tools to mirror the run to: ``"tensorboard"``, ``"mlflow"``, ``"wandb"`` or sink
            objects (:mod:`runpoint.sinks`); added to the config's ``experiment.sinks`` and
            ``$RUNPOINT_SINKS``. A failing sink never stops training.

    Example::

        with rp.init(project="digits", config={"lr": 3e-4}, tags=["mlp"]) as run:
            run.log({"train/loss": 0.25}, step=0)

        cfg = rp.load_config("configs/base.yaml", profile="prod")
        with rp.init(config=cfg) as run:     # project, name, tags... from cfg.experiment
            ...
    """
    plain = to_plain(config)
    given = {"project": project, "name": name, "group": group, "tags": tags, "notes": notes, "root": root}
    chosen = {**_experiment_fields(plain), **{key: value for key, value in given.items() if value is not None}}
    project, name, group, root = chosen.get("project"), chosen.get("name"), chosen.get("group"), chosen.get("root")
    tags, notes = chosen.get("tags", ()), chosen.get("notes", "")
    if project is None:
        raise InvalidArgumentError(
            "project", "is required: pass rp.init(project=...), or set experiment.project in the config"
        )
    _check_identifier("project", project)
    tags = _check_tags(tags)
    if not isinstance(notes, str):
        raise InvalidArgumentError("notes", f"must be a string, got {type(notes).__qualname__}")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise InvalidArgumentError("name", "must be a non-empty string")
    if group is not None and (not isinstance(group, str) or not group):
        raise InvalidArgumentError("group", "must be a non-empty string")
    if not (isinstance(flush_interval, (int, float)) and 0 < flush_interval <= 60):
        raise InvalidArgumentError("flush_interval", "must be a number of seconds in (0, 60]")
    if console is None:
        console = os.environ.get(CONSOLE_ENV, "1").lower() not in {"0", "false", "no", "off"}
    if system_metrics is None:
        system_metrics = _system_metrics_from_config(config, plain)
    system_interval = system.interval_from(system_metrics)
    masked = mask_secrets(plain)
    chosen_sinks = select_sinks(sinks, masked)
    root_path = resolve_root(root)
    store = open_store(root_path)
    if resume == "allow":
        resume = _resumable(store, project, id)
    if resume is not None:
        if id is not None and id != resume:
            raise InvalidArgumentError("id", f"conflicts with resume={resume!r}; give one of them")
        run = _resume(store, root_path, project, resume, masked, tags, console=console, flush_interval=float(flush_interval))
    else:
        run = _create(
            store, root_path, project, id, name, masked, tags, notes, group, console=console,
            flush_interval=float(flush_interval),
        )
    if chosen_sinks:  # before anything else writes, so the sinks see every point
        run._attach_sinks(SinkHub(run, chosen_sinks))
    if system_interval is not None:
        system.start_sampler(run, system_interval)
    return run


def _experiment_fields(plain: dict[str, Any]) -> dict[str, Any]:
    """The run's project, name, group, tags, notes and root as the config's experiment section sets them."""
    section = plain.get("experiment")
    if not isinstance(section, dict):
        return {}
    return {key: section[key] for key in EXPERIMENT_FIELDS if section.get(key) is not None}


def _system_metrics_from_config(config: Any, plain: dict[str, Any]) -> float | bool | None:
    """``system_metrics`` as the config's experiment section asks for it; None leaves it to the default.

    Only what the config sets itself counts (a pydantic model's ``model_fields_set``, a
    dict's keys): a schema default must not override ``$RUNPOINT_SYSTEM_METRICS``.
    """
    section = plain.get("experiment")
    if not isinstance(section, dict):
        return None
    explicit = getattr(getattr(config, "experiment", None), "model_fields_set", None)
    given = set(explicit) if explicit is not None else set(section)
    enabled = section.get("log_system_metrics") if "log_system_metrics" in given else None
    interval = section.get("system_metrics_interval") if "system_metrics_interval" in given else None
    if enabled is False:
        return False
    if interval is None:
        return True if enabled is True else None
    if enabled is None and system.interval_from(None) is None:
        return False  # the environment turned sampling off; the config only says how often
    return float(interval)


def _check_identifier(argument: str, value: Any) -> None:
    if not isinstance(value, str) or not is_valid_identifier(value):
        raise InvalidArgumentError(
            argument, f"{value!r} is not valid: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )


def _check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    if isinstance(tags, str):
        raise InvalidArgumentError("tags", f"expected a list of strings, got the string {tags!r}")
    checked: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidArgumentError("tags", f"every tag must be a non-empty string, got {tag!r}")
        if tag not in checked:
            checked.append(tag)
    return tuple(checked)


def _write_config(path: Path, run_id: str, masked: dict[str, Any]) -> None:
    from .._util.yaml import run_config_text

    write_atomic(path, run_config_text(masked, f"# runpoint: the config of run {run_id} as it ran (secrets masked)\n"))


def _meta_for_store(meta: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in meta.items() if key != "packages"}  # meta.json keeps them


def _start_console(paths: RunPaths, resume_count: int, enabled: bool) -> ConsoleCapture | None:
    if not enabled:
        return None
    capture = ConsoleCapture(paths.console_log(resume_count))
    capture.start()
    return capture


def _create(
    store: Store, root: Path, project: str, run_id: str | None, name: str | None, masked: dict[str, Any],
    tags: tuple[str, ...], notes: str, group: str | None, *, console: bool, flush_interval: float,
) -> Run:
    if run_id is not None:
        _check_identifier("id", run_id)
    run_id = run_id or new_run_id()
    paths = RunPaths(root, project, run_id)
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
        _write_config(paths.config, run_id, masked)
        meta = metadata.capture(paths.dir, params)
        write_atomic(paths.meta, json.dumps(meta, indent=2, default=str))
        now = time.time()
        record = RunRecord(
            id=run_id, project=project, name=name or new_run_name(store.count_runs(project) + 1),
            status=RunStatus.RUNNING, created_at=now, heartbeat_at=now, dir=paths.relative_dir,
            notes=notes, tags=tags, group=group, config_hash=config_hash(masked),
            host=socket.gethostname(), pid=os.getpid(),
        )
        store.create_run(record, params, meta=_meta_for_store(meta))
    except BaseException as exc:
        shutil.rmtree(paths.dir, ignore_errors=True)  # we created it: leave nothing half-made
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise StoreError(
                f"could not create run {run_id} in {paths.dir}: no space left on the disk ({exc.filename}); "
                "free some space and start again", paths.dir,
            ) from exc
        raise
    return Run(
        store=store, paths=paths, name=record.name, config=masked, tags=tags, notes=notes, group=group,
        resume_count=0, next_step=0, summary={}, meta=meta,
        console=_start_console(paths, 0, console), flush_interval=flush_interval,
    )


def _resumable(store: Store, project: str, run_id: str | None) -> str | None:
    """For ``resume="allow"``: the id of the run to resume, or None to start one."""
    if run_id is None:
        runs = store.list_runs(RunQuery(project=project, limit=1))
        return runs[0].id if runs else None
    _check_identifier("id", run_id)
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
    _check_identifier("resume", resume)
    record = store.get_run(resume)
    if record.project != project:
        raise InvalidArgumentError(
            "resume", f"run {resume!r} belongs to project {record.project!r}, not {project!r}"
        )
    return record


def _resume(
    store: Store, root: Path, project: str, resume: str, masked: dict[str, Any], tags: tuple[str, ...],
    *, console: bool, flush_interval: float,
) -> Run:
    record = find_for_resume(store, root, project, resume)
    if record.status is RunStatus.RUNNING:
        if not is_dead(record):
            raise RunpointError(
                f"run {record.id} is still running (pid {record.pid} on {record.host}); "
                "stop it before resuming, or wait for its heartbeat to go stale"
            )
        reap_crashed(store, [record])
    record = store.reopen_run(record.id, host=socket.gethostname(), pid=os.getpid(), now=time.time())
    paths = RunPaths(root, project, record.id)
    paths.logs.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(paths)
    attempt = metadata.capture(paths.dir, flatten(masked) if masked else store.get_params(record.id))
    meta.setdefault("resumes", []).append(
        {key: attempt[key] for key in ("host", "pid", "argv", "cwd", "git", "started_at")}
    )
    write_atomic(paths.meta, json.dumps(meta, indent=2, default=str))
    config = masked
    if masked and config_hash(masked) != record.config_hash:
        changed = paths.dir / f"config_resume_{record.resume_count}.yaml"
        logger.warning(
            "runpoint: run %s resumes with a different config than it started with; "
            "the new one is saved as %s, params keep the original", record.id, changed.name,
        )
        _write_config(changed, record.id, masked)
    elif not masked:
        config = _read_config(paths)
    stats = store.metric_stats(record.id)
    next_step = max((s.last_step for s in stats.values()), default=-1) + 1
    run = Run(
        store=store, paths=paths, name=record.name, config=config, tags=record.tags, notes=record.notes,
        group=record.group, resume_count=record.resume_count, next_step=next_step,
        summary=store.get_summary(record.id), meta=meta,
        console=_start_console(paths, record.resume_count, console), flush_interval=flush_interval,
        stored_steps={key: s.last_step for key, s in stats.items()},
    )
    new_tags = tuple(tag for tag in tags if tag not in record.tags)
    if new_tags:
        run.add_params({}, new_tags)
        run.tags = record.tags + new_tags
    return run


def _read_meta(paths: RunPaths) -> dict[str, Any]:
    try:
        return json.loads(paths.meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _read_config(paths: RunPaths) -> dict[str, Any]:
    from .._util.yaml import read_yaml_file

    try:
        loaded = read_yaml_file(paths.config)
    except ConfigError:
        return {}
    return loaded if isinstance(loaded, dict) else {}
