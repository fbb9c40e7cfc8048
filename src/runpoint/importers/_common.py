"""Writing one imported run into a root: store record, metrics, config.yaml and meta.json.

An imported run gets an id made from its original start time and its identity in the
source tool, so ids still sort by time and importing the same source twice finds the run
already there and skips it. The run is first stored as ``crashed`` with the error
"import incomplete", filled in, and only then given its real status: an import that is
interrupted leaves a run that the next import recognises, removes and redoes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .._util.fs import write_atomic
from .._util.ids import is_valid_identifier, run_id_for
from .._util.yaml import run_config_text
from ..artifacts.paths import RunPaths
from ..config import config_hash, flatten, mask_secrets
from ..errors import InvalidArgumentError, RunNotFoundError
from ..store import MetricSeries, RunRecord, RunStatus, Store, WriteBatch
from ..store.base import MediaRecord

logger = logging.getLogger("runpoint")

INCOMPLETE = "import incomplete"


@dataclass
class ImportedRun:
    """A run read from another tool, ready to be written into a root."""

    source: str  # "tensorboard" | "mlflow"
    source_id: str  # what identifies the run in the source: a path, an MLflow run id
    project: str
    name: str
    created_at: float
    ended_at: float | None
    status: RunStatus
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, MetricSeries] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    notes: str = ""
    group: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    media: list[MediaRecord] = field(default_factory=list)
    origin: dict[str, Any] = field(default_factory=dict)  # goes to meta.json under "imported"


def imported_run_id(created_at: float, source: str, source_id: str) -> str:
    """12 characters like a native id: 8 of start time, 4 of a hash of the source identity."""
    digest = int.from_bytes(hashlib.sha256(f"{source}\0{source_id}".encode()).digest()[:4], "big") >> 12
    return run_id_for(created_at, digest)


def as_project(text: str, fallback: str) -> str:
    """``text`` turned into a valid project name (letters, digits, ``. _ -``)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:128]
    return cleaned if cleaned and is_valid_identifier(cleaned) else fallback


def check_project(project: str | None) -> None:
    if project is not None and (not isinstance(project, str) or not is_valid_identifier(project)):
        raise InvalidArgumentError("project", f"{project!r} is not valid: use letters, digits, '.', '_' or '-'")


def unflatten(params: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}``; keys that would collide stay flat."""
    tree: dict[str, Any] = {}
    for key, value in params.items():
        parts = key.split(".")
        node = tree
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                break
            node = child
        else:
            if parts[-1] not in node:
                node[parts[-1]] = value
                continue
        tree[key] = value  # a collision ("a" and "a.b"): keep this one under its full key
    return tree


def write_run(store: Store, root: Path, run: ImportedRun) -> str | None:
    """Store ``run`` in the root; its id, or None when it was imported before."""
    run_id = imported_run_id(run.created_at, run.source, run.source_id)
    paths = RunPaths(root, run.project, run_id)
    try:
        existing = store.get_run(run_id)
    except RunNotFoundError:
        pass
    else:
        if existing.error != INCOMPLETE:
            return None
        store.delete_run(run_id)  # an interrupted import: redo it
    shutil.rmtree(paths.dir, ignore_errors=True)
    paths.logs.mkdir(parents=True)
    masked = mask_secrets(run.config)
    header = f"# runpoint: the config of run {run_id}, imported from {run.source} (secrets masked)\n"
    write_atomic(paths.config, run_config_text(masked, header))
    meta = {
        "imported": {"from": run.source, "id": run.source_id, "at": time.time(), "by_host": socket.gethostname(), **run.origin},
        "started_at": run.created_at,
        "ended_at": run.ended_at,
        "status": run.status.value,
    }
    write_atomic(paths.meta, json.dumps(meta, indent=2, default=str))
    last_time = max((series.times[-1] for series in run.metrics.values() if len(series)), default=run.created_at)
    record = RunRecord(
        id=run_id, project=run.project, name=run.name, status=RunStatus.CRASHED, created_at=run.created_at,
        heartbeat_at=run.ended_at or last_time, dir=paths.relative_dir, ended_at=run.ended_at or last_time,
        notes=run.notes, tags=tuple(dict.fromkeys(("imported", run.source, *run.tags))), group=run.group,
        config_hash=config_hash(masked), error=INCOMPLETE,
    )
    store.create_run(record, flatten(masked), meta=meta)
    store.write(run_id, WriteBatch(metrics=run.metrics, summary=dict(run.summary), media=list(run.media)))
    store.set_status(run_id, run.status, error=None, ended_at=run.ended_at or last_time)
    return run_id
