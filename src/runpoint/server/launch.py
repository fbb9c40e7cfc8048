"""Starting training processes from the dashboard, and stopping them.

A launch writes the submitted config to ``<root>/.launches/<id>/config.yaml``, starts the
entry point's command in a new session (its own process group) with ``RUNPOINT_ROOT``
pointing at the dashboard's root, and sends its output to ``output.log`` beside it.
``launch.json`` records what was started, so a restarted dashboard still lists it.

Stop sends SIGTERM to the process group: runpoint's handler runs the run's preemption
hooks (the checkpoint manager saves) and the run ends as ``killed``. A second, forced stop
sends SIGKILL. Runs started elsewhere on this host can be stopped too, by their pid.

A pid is signalled only while it still belongs to the process it was recorded for: the
kernel hands the pids of ended processes to new ones. ``launch.json`` keeps the start time
of the launched process beside its pid; a launch whose pid now names a process started at
another time has ended, and is never signalled. A run's pid must name a process that
started before the run's last heartbeat, and that heartbeat may not lie in the future.

Processes outlive the dashboard: closing the UI does not stop training.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .._util.fs import write_atomic
from ..errors import InvalidArgumentError, RunpointError
from ..run.liveness import heartbeat_in_future
from ..store.base import RunRecord, RunStatus
from .entry_points import PLACEHOLDERS, EntryPoint
from .launch_limits import launch_cwd

LAUNCH_DIR = ".launches"


@dataclass
class Launch:
    """One process the dashboard started."""

    id: str
    entry_point: str
    command: list[str]
    cwd: str
    pid: int
    project: str
    name: str
    started_at: float
    state: str = "running"  # running | exited
    exit_code: int | None = None
    ended_at: float | None = None
    run_id: str | None = None
    stop_requested_at: float | None = None
    stop_signal: str | None = None
    pid_started_at: float | None = None  # the process's start time: tells it from a later one with its pid


# psutil's start times come in clock ticks (1/100 s) from an integer boot time
SAME_START_TOLERANCE = 0.05


def _process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (Unix time); None when there is no such process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return None


def _still_launched(launch: Launch) -> bool:
    """Whether ``launch.pid`` still names the process the launch started."""
    if not isinstance(launch.pid, int) or launch.pid <= 1:  # killpg(0) would signal our own group
        return False
    started = _process_start_time(launch.pid)
    if started is None:
        return False
    if launch.pid_started_at is None:  # recorded before start times were: it started before the record
        return started <= launch.started_at + 1
    return abs(started - launch.pid_started_at) <= SAME_START_TOLERANCE


class Launcher:
    """Starts entry points as child processes and keeps track of them.

    Example::

        launcher = Launcher(Path("runpoint"), [demo_entry_point()])
        launch = launcher.launch("demo", {"training": {"epochs": 3}}, project="demo")
        launcher.stop(launch.id)
    """

    def __init__(self, root: Path, entry_points: list[EntryPoint]) -> None:
        self.root = root
        self.dir = root / LAUNCH_DIR
        self.entry_points = {entry.name: entry for entry in entry_points}
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._launches: dict[str, Launch] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.dir.is_dir():
            return
        for record in sorted(self.dir.glob("*/launch.json")):
            try:
                launch = Launch(**json.loads(record.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                continue
            self._launches[launch.id] = launch

    def _save(self, launch: Launch) -> None:
        write_atomic(self.dir / launch.id / "launch.json", json.dumps(asdict(launch), indent=2))

    # -- starting --------------------------------------------------------------------

    def launch(self, entry_name: str, config: dict[str, Any], *, project: str, name: str = "") -> Launch:
        """Start ``entry_name`` with ``config`` (validated by the caller); returns the record."""
        from .._util.ids import is_valid_identifier

        entry = self.entry_points.get(entry_name)
        if entry is None:
            known = ", ".join(sorted(self.entry_points)) or "none"
            raise InvalidArgumentError("entry_point", f"no entry point {entry_name!r} (known: {known})")
        if not is_valid_identifier(project):
            raise InvalidArgumentError("project", f"{project!r} is not valid: letters, digits, '.', '_' or '-'")
        if name and (len(name) > 128 or any(ord(c) < 32 for c in name)):
            raise InvalidArgumentError("name", "must be at most 128 printable characters")
        from .._util.yaml import dump_yaml

        launch_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        folder = self.dir / launch_id
        folder.mkdir(parents=True)
        config_path = folder / "config.yaml"
        write_atomic(config_path, dump_yaml(config))  # quoted so that rp.load_config reads back the same values
        values = {
            "python": sys.executable, "config": str(config_path), "root": str(self.root),
            "project": project, "name": name, "launch_id": launch_id,
        }
        command = [self._fill(part, values) for part in entry.command]
        cwd = str(launch_cwd(entry.cwd))
        env = {**os.environ, "RUNPOINT_ROOT": str(self.root), "RUNPOINT_LAUNCH_CONFIG": str(config_path),
               "RUNPOINT_LAUNCH_ID": launch_id, "PYTHONUNBUFFERED": "1"}
        with open(folder / "output.log", "wb") as output:
            try:
                process = subprocess.Popen(
                    command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )
            except OSError as exc:
                output.close()
                shutil.rmtree(folder, ignore_errors=True)  # nothing ran: leave no launch behind
                raise RunpointError(f"could not start {command[0]!r}: {exc}") from None
        launch = Launch(
            id=launch_id, entry_point=entry.name, command=command, cwd=cwd, pid=process.pid,
            project=project, name=name, started_at=time.time(), pid_started_at=_process_start_time(process.pid),
        )
        with self._lock:
            self._processes[launch_id] = process
            self._launches[launch_id] = launch
            self._save(launch)
        return launch

    @staticmethod
    def _fill(part: str, values: dict[str, str]) -> str:
        for key in PLACEHOLDERS:
            part = part.replace("{" + key + "}", values[key])
        return part

    # -- watching --------------------------------------------------------------------

    def refresh(self, launch: Launch, runs: list[RunRecord]) -> Launch:
        """Update ``launch`` from its process and from ``runs`` (recent runs of the store)."""
        changed = False
        if launch.state == "running":
            # our own child keeps its pid until we reap it; a launch of an earlier dashboard
            # is checked by its start time (its pid may name another process by now)
            process = self._processes.get(launch.id)
            code = process.poll() if process is not None else (None if _still_launched(launch) else -1)
            if code is not None:
                self._mark_ended(launch, code)
                changed = True
        if launch.run_id is None:
            host = socket.gethostname()
            for run in runs:
                if run.host == host and run.created_at >= launch.started_at - 1 and run.pid is not None and (
                    run.pid == launch.pid or self._in_group(run.pid, launch.pid)
                ):
                    launch.run_id = run.id
                    changed = True
                    break
        if changed:
            with self._lock:
                self._save(launch)
        return launch

    @staticmethod
    def _mark_ended(launch: Launch, code: int) -> None:
        launch.state, launch.exit_code, launch.ended_at = "exited", code, time.time()

    @staticmethod
    def _in_group(pid: int, group: int) -> bool:
        try:
            return os.getpgid(pid) == group
        except OSError:
            return False

    def list(self) -> list[Launch]:
        with self._lock:
            return sorted(self._launches.values(), key=lambda launch: launch.started_at, reverse=True)

    def get(self, launch_id: str) -> Launch:
        launch = self._launches.get(launch_id)
        if launch is None:
            raise InvalidArgumentError("launch", f"no launch {launch_id!r}")
        return launch

    def output_tail(self, launch_id: str, max_bytes: int = 20_000) -> str:
        path = self.dir / self.get(launch_id).id / "output.log"
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                size = handle.tell()
                handle.seek(max(0, size - max_bytes))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- stopping --------------------------------------------------------------------

    def stop(self, launch_id: str, *, force: bool = False) -> Launch:
        """SIGTERM (or SIGKILL with ``force``) to the launch's process group."""
        launch = self.get(launch_id)
        process = self._processes.get(launch_id)
        if launch.state != "running" or (process is not None and process.poll() is not None):
            raise InvalidArgumentError("launch", f"launch {launch_id} is not running")
        if process is None and not _still_launched(launch):
            with self._lock:
                self._mark_ended(launch, -1)
                self._save(launch)
            raise InvalidArgumentError("launch", f"launch {launch_id} is not running (its process has ended)")
        signum = signal.SIGKILL if force else signal.SIGTERM
        try:
            os.killpg(launch.pid, signum)
        except ProcessLookupError:
            raise InvalidArgumentError("launch", f"launch {launch_id} is not running") from None
        except PermissionError:
            raise InvalidArgumentError("launch", f"launch {launch_id} (pid {launch.pid}) belongs to another user") from None
        launch.stop_requested_at = time.time()
        launch.stop_signal = signum.name
        with self._lock:
            self._save(launch)
        return launch

    def launch_of_run(self, run_id: str, pid: int | None = None) -> Launch | None:
        """The launch that created the run (by the run id it recorded, or by the run's pid)."""
        return next((launch for launch in self.list()
                     if launch.run_id == run_id or (pid is not None and launch.run_id is None and launch.pid == pid)), None)

    def stop_run(self, run: RunRecord, *, force: bool = False) -> str:
        """Stop a running run: through its launch when this dashboard started it, else by pid."""
        if run.status is not RunStatus.RUNNING:
            raise InvalidArgumentError("run", f"run {run.id} is {run.status.value}, not running")
        launch = self.launch_of_run(run.id, run.pid if run.host == socket.gethostname() else None)
        if launch is not None and launch.state == "running":
            self.stop(launch.id, force=force)
            return "SIGKILL" if force else "SIGTERM"
        if run.host != socket.gethostname() or run.pid is None:
            raise InvalidArgumentError("run", f"run {run.id} runs on {run.host}; stop it there")
        if heartbeat_in_future(run):
            raise InvalidArgumentError(
                "run", f"run {run.id} records a heartbeat in the future ({run.heartbeat_at:.0f}); its pid "
                f"{run.pid} is not trusted: stop the process yourself if it is the run's"
            )
        started = _process_start_time(run.pid)
        # the run's process started before the run's last heartbeat (a resume writes one too);
        # a process started after it got the pid once the run's process had ended
        if started is None or started > run.heartbeat_at:
            raise InvalidArgumentError("run", f"the process of run {run.id} (pid {run.pid}) is gone")
        signum = signal.SIGKILL if force else signal.SIGTERM
        try:
            os.kill(run.pid, signum)
        except ProcessLookupError:
            raise InvalidArgumentError("run", f"the process of run {run.id} (pid {run.pid}) is gone") from None
        except PermissionError:
            raise InvalidArgumentError("run", f"run {run.id} (pid {run.pid}) belongs to another user; stop it as that user") from None
        return signum.name
