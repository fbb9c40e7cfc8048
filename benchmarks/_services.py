"""The servers the team-server benchmark talks to, started and always stopped.

:class:`Services` is a context manager: everything started inside it (PostgreSQL, moto's S3
server, ``mlflow server``, ``runpoint server``) is stopped when the block ends, normally, on
an exception, on Ctrl-C or on SIGTERM. Each server process is the leader of a process group
of its own, so its workers (uvicorn's, gunicorn's) are signalled with it: SIGTERM, then SIGKILL
after a grace period. Everything listens on 127.0.0.1; logs go to files in ``workdir`` and
their tail is in the error when a server does not come up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from runpoint._devtools.pg_cluster import TempCluster, binaries, free_port

ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _stop_group(process: subprocess.Popen[Any], grace: float = 15.0) -> None:
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    try:  # workers that outlived their leader
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class Services:
    """Start servers with the methods; all of them stop when the ``with`` block ends."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._stack = ExitStack()
        self._previous_sigterm: Any = None
        self.s3_endpoint: str | None = None

    def __enter__(self) -> "Services":
        self._previous_sigterm = signal.signal(signal.SIGTERM, self._terminated)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._stack.close()
        finally:
            signal.signal(signal.SIGTERM, self._previous_sigterm)

    @staticmethod
    def _terminated(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)  # unwinds through __exit__: the servers are stopped

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None,
              ready_url: str | None = None, port: int | None = None, timeout: float = 180.0) -> subprocess.Popen[bytes]:
        """Start ``argv`` in a process group of its own; wait until ``ready_url`` answers (or ``port`` accepts)."""
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as handle:
            process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**os.environ, **(env or {})}, cwd=self.workdir, start_new_session=True)
        self._stack.callback(_stop_group, process)
        deadline = time.monotonic() + timeout
        while not _answers(ready_url, port):
            if process.poll() is not None or time.monotonic() > deadline:
                state = f"exited with {process.returncode}" if process.poll() is not None else f"not up in {timeout:.0f} s"
                raise RuntimeError(f"{name} {state}: {' '.join(argv)[:300]}\n{_tail(log)}")
            time.sleep(0.25)
        return process

    def postgres(self) -> TempCluster:
        bin_dir = binaries()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
        cluster = TempCluster(bin_dir, max_connections=400)
        self._stack.callback(cluster.stop)
        cluster.start()
        return cluster

    def moto(self, buckets: tuple[str, ...]) -> str:
        """moto's S3 server; the endpoint URL, with ``buckets`` created."""
        port = free_port()
        self.spawn("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                   env=CREDENTIALS, port=port, timeout=60)
        self.s3_endpoint = f"http://127.0.0.1:{port}"
        client = s3_client(self.s3_endpoint)
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        return self.s3_endpoint

    def s3_env(self) -> dict[str, str]:
        """What points boto3, s3fs and MLflow at moto."""
        assert self.s3_endpoint, "start moto first"
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.s3_endpoint, "AWS_ENDPOINT_URL_S3": self.s3_endpoint,
                "FSSPEC_S3_ENDPOINT_URL": self.s3_endpoint, "MLFLOW_S3_ENDPOINT_URL": self.s3_endpoint}

    def mlflow(self, backend_url: str, artifacts: str, workers: int) -> str:
        """``mlflow server`` over ``backend_url`` (a SQLAlchemy URL) proxying artifacts to ``artifacts``."""
        port = free_port()
        mlflow = Path(sys.executable).with_name("mlflow")
        argv = [str(mlflow), "server", "--backend-store-uri", backend_url, "--artifacts-destination", artifacts,
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
        url = f"http://127.0.0.1:{port}"
        self.spawn("mlflow-server", argv, env=self.s3_env(), ready_url=url + "/health", timeout=300)
        return url

    def runpoint(self, db: str, artifacts: str, workers: int, extra: tuple[str, ...] = (), name: str = "runpoint-server",
                 env: dict[str, str] | None = None) -> str:
        """``runpoint server`` (the team server) over ``db`` with run files at ``artifacts``."""
        port = free_port()
        argv = [sys.executable, "-m", "runpoint", "server", "--db", db, "--artifacts", artifacts,
                "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *extra]
        env = {**self.s3_env(), **(env or {}), "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)}
        url = f"http://127.0.0.1:{port}"
        self.spawn(name, argv, env=env, ready_url=url + "/", timeout=120)
        return url


def _answers(url: str | None, port: int | None) -> bool:
    import socket

    if url is None:
        try:
            socket.create_connection(("127.0.0.1", port or 0), timeout=1).close()
            return True
        except OSError:
            return False
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def s3_client(endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"], region_name=CREDENTIALS["AWS_DEFAULT_REGION"])
