"""Shared fixtures: a fresh root per test, and helpers to run real child processes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Callable

import pytest

from runpoint.store.sqlite import SQLiteStore

from .accounts_fixtures import server_db  # noqa: F401  (fixture)
from .http_server_fixture import http_store_url, store_server  # noqa: F401  (fixtures)
from .postgres_fixture import postgres_dsn, postgres_empty_url, postgres_url  # noqa: F401  (fixtures)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty root; the working directory is the test's tmp dir, outside any git repo."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RUNPOINT_ROOT", raising=False)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    return tmp_path / "runpoint"


@pytest.fixture
def store_at(root: Path) -> Callable[[], SQLiteStore]:
    """Opens (a new connection to) the root's store, closed at the end of the test."""
    opened: list[SQLiteStore] = []

    def open_it() -> SQLiteStore:
        store = SQLiteStore(root / "runpoint.db")
        opened.append(store)
        return store

    yield open_it
    for store in opened:
        store.close()


def child_env(root: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["RUNPOINT_ROOT"] = str(root)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def write_script(directory: Path, code: str, name: str = "script.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(code))
    return path


def run_script(directory: Path, root: Path, code: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh Python process with RUNPOINT_ROOT set; returns its result."""
    script = write_script(directory, code)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=directory, env=child_env(root, **env),
        capture_output=True, timeout=timeout,
    )
    # decoded by hand: text=True would turn the carriage returns of progress bars into newlines
    return subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode("utf-8", "replace"), result.stderr.decode("utf-8", "replace")
    )


def start_script(directory: Path, root: Path, code: str, name: str = "script.py", **env: str) -> subprocess.Popen[str]:
    script = write_script(directory, code, name)
    return subprocess.Popen(
        [sys.executable, str(script)], cwd=directory, env=child_env(root, **env),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 60) -> str:
    """Read the child's stdout until a line starting with ``prefix``; returns that line."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"child exited before printing {prefix!r}: {proc.stderr.read() if proc.stderr else ''}")
        if line.startswith(prefix):
            return line.strip()
    raise AssertionError(f"child did not print {prefix!r} within {timeout}s")


def cli(root: Path | None, *args: str, input: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m runpoint ARGS`` as a user would; ``--root`` first when given."""
    command = [sys.executable, "-m", "runpoint", *args]
    if root is not None:
        command += ["--root", str(root)]
    env = dict(os.environ)
    env.pop("RUNPOINT_ROOT", None)
    env["COLUMNS"] = "200"
    return subprocess.run(command, capture_output=True, text=True, input=input, cwd=cwd, env=env, timeout=120)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real ``mlflow server`` on 127.0.0.1 (sqlite backend), shared by the session and stopped after it."""
    import signal
    import urllib.request

    pytest.importorskip("mlflow")
    directory = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    log = open(directory / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{directory}/mlflow.db",
         "--artifacts-destination", str(directory / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mlflow server exited: {(directory / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("mlflow server did not come up within 120 s")
            time.sleep(0.25)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(3)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:  # uvicorn's graceful shutdown waits for idle connections
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def _mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow sqlite store, migrated once: creating one costs MLflow several seconds."""
    pytest.importorskip("mlflow")
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def mlflow_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _mlflow_db_template: Path) -> str:
    """The tracking URI of a fresh MLflow sqlite store for this test; its artifacts go to tmp_path/mlruns."""
    import shutil

    shutil.copyfile(_mlflow_db_template, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path}/mlflow.db"


def _mount(target, tmp_path) -> str | None:
    """Mount a ~4 MiB file system at ``target``; None on success, else why it failed."""
    tmpfs = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], capture_output=True, text=True)
    if tmpfs.returncode == 0:
        return None
    if shutil.which("mkfs.ext4") is None:
        return f"mount -t tmpfs failed ({tmpfs.stderr.strip()}) and mkfs.ext4 is not installed"
    image = tmp_path / "disk.img"
    with open(image, "wb") as handle:
        handle.truncate(6 * 2**20)
    for command in (["mkfs.ext4", "-q", "-F", str(image)], ["mount", "-o", "loop", str(image), str(target)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            return f"mount -t tmpfs failed ({tmpfs.stderr.strip()}); {command[0]} failed ({done.stderr.strip()})"
    return None


@pytest.fixture
def small_disk(tmp_path):
    """A ~4 MiB file system of its own (tmpfs, or a loop device), to fill up; skips without root."""
    target = tmp_path / "small"
    target.mkdir()
    why = _mount(target, tmp_path)
    if why is not None:
        pytest.skip(f"cannot mount a small file system to fill (needs root): {why}")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)
