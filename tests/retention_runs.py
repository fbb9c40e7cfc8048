"""Runs made straight in a root for the retention tests: a store row with chosen status, times,
tags and process, a directory of real files by kind, and registered model versions as rows."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from runpoint.store import RunRecord, RunStatus
from runpoint.store.records import MetricSeries, WriteBatch
from runpoint.store.sqlite import SQLiteStore

DAY = 86400.0


def dead_pid() -> int:
    """The pid of a process of this host that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@dataclass
class Spec:
    """A run to make: ``live`` runs are ``running`` with this process's pid and a fresh heartbeat;
    ``dead`` ones are ``running`` with a gone pid (readers reap them as crashed)."""

    project: str
    status: str  # completed, failed, killed, crashed, live, dead
    age_days: float  # since it ended (live: since it started)
    tags: tuple[str, ...] = ()
    registered: tuple[int, ...] = ()  # checkpoint steps registered as model versions


def make_run(store: SQLiteStore, root: Path, run_id: str, spec: Spec, now: float) -> Path:
    """Insert the run and write its files: two checkpoints, media, a console log, a config."""
    ended = now - spec.age_days * DAY
    running = spec.status in {"live", "dead"}
    record = RunRecord(
        id=run_id, project=spec.project, name=run_id, created_at=ended if spec.status == "live" else ended - 3600,
        heartbeat_at=now if spec.status == "live" else ended, dir=f"{spec.project}/{run_id}",
        status=RunStatus.RUNNING if running else RunStatus(spec.status), ended_at=None if running else ended,
        tags=spec.tags, host=socket.gethostname(),
        pid=os.getpid() if spec.status == "live" else dead_pid() if spec.status == "dead" else None,
    )
    store.create_run(record, params={"lr": 0.1})
    store.write(run_id, WriteBatch(metrics={"loss": MetricSeries(array("q", [0, 1, 2]), array("d", [1.0, 0.5, 0.25]),
                                                                   array("d", [now] * 3))}))
    directory = root / spec.project / run_id
    files = {
        "config.yaml": b"lr: 0.1\n" * 10,
        "logs/console.log": b"epoch 1\n" * 50,
        "media/val/samples_0.png": os.urandom(300),
        "checkpoints/step-000001/model.safetensors": os.urandom(1000),
        "checkpoints/step-000001/manifest.json": b"{}",
        "checkpoints/step-000002/model.safetensors": os.urandom(2000),
        "checkpoints/step-000002/manifest.json": b"{}",
        "checkpoints/latest": b"step-000002",
    }
    for relative, data in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if spec.registered:
        register_versions(root, run_id, spec.registered, directory)
    return directory


def register_versions(root: Path, run_id: str, steps: tuple[int, ...], directory: Path, model: str = "m") -> None:
    """Model versions of ``run_id``'s checkpoints, as rows in the real ``runpoint.db``."""
    with sqlite3.connect(root / "runpoint.db") as conn:
        conn.execute("INSERT OR IGNORE INTO models (name, project, created_at) VALUES (?, 'p', ?)", (model, time.time()))
        for step in steps:
            version = conn.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?",
                                   (model,)).fetchone()[0]
            conn.execute(
                "INSERT INTO model_versions (name, version, run_id, step, checkpoint, lineage, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (model, version, run_id, step, str(directory / "checkpoints" / f"step-{step:06d}"),
                 json.dumps({"config_hash": None}), time.time()),
            )


def files_of(directory: Path) -> dict[str, int]:
    """Every regular file under ``directory`` and its size."""
    return {str(path.relative_to(directory)): path.stat().st_size
            for path in sorted(directory.rglob("*")) if path.is_file()}


def run_cli(root: Path | None, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``runpoint ARGS [--root ROOT]`` in this process (no interpreter start), as ``conftest.cli`` answers."""
    from typer.testing import CliRunner

    from runpoint.cli import _output
    from runpoint.cli.main import app

    command = [*args, *(["--root", str(root)] if root is not None else [])]
    # the CLI's consoles took their width when first imported, from whatever terminal this worker had
    widths = _output.console.width, _output.err_console.width
    _output.console.width = _output.err_console.width = 200
    try:
        result = CliRunner().invoke(app, command, input=input, env={"COLUMNS": "200", "RUNPOINT_ROOT": None})
    finally:
        _output.console.width, _output.err_console.width = widths
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(command, result.exit_code, result.stdout, result.stderr)
