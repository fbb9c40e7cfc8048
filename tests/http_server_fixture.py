"""A live team server for the tests: uvicorn on a free 127.0.0.1 port, serving a store per test.

``store_server`` (session) runs :func:`runpoint.server.team.create_server_app` under uvicorn in
a thread of the test process: real HTTP over a socket, started once (about a second).
``http_store_url`` (per test) points that server's store API at a fresh PostgreSQL database
of the test's own (``postgres_url``) and yields the server's URL; asked twice in one test it
is the same server and database (as two clients of one team server are).
``principal_for`` sets who the requests come from (a limited token's principal) without
the accounts machinery: a tiny middleware reads it from the server object.

Subprocess servers (``runpoint server``) are started by :func:`start_server_process`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from runpoint.server.auth import Principal


class LiveServer:
    """uvicorn serving the team app in a thread; ``principal`` (when set) is every request's principal."""

    def __init__(self, db: str) -> None:
        import uvicorn

        from runpoint.server.team import create_server_app

        self.app = create_server_app(db)
        self.principal: Principal | None = None
        server = self

        class _Principal:
            def __init__(self, app: Any) -> None:
                self.app = app

            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                if scope["type"] == "http" and server.principal is not None:
                    scope.setdefault("state", {})["principal"] = server.principal
                await self.app(scope, receive, send)

        self.app.add_middleware(_Principal)
        # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only then (else 40 ms per reply, Nagle's)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, timeout_graceful_shutdown=1)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def use(self, store_url: str) -> None:
        from runpoint.server.store_api_service import StoreService
        from runpoint.store import open_store

        old = self.app.state.store_service.store
        self.app.state.store_service = StoreService(open_store(store_url))
        old.close()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        self.app.state.store_service.store.close()


@pytest.fixture(scope="session")
def store_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    pytest.importorskip("uvicorn")
    server = LiveServer(f"sqlite:///{tmp_path_factory.mktemp('server')}/runpoint.db")
    yield server
    server.stop()


@pytest.fixture
def http_store_url(store_server: LiveServer, postgres_url: str) -> Iterator[str]:
    """The live server's URL, serving a fresh PostgreSQL store of this test's own."""
    store_server.use(postgres_url)
    store_server.principal = None
    yield store_server.url
    store_server.principal = None
    store_server.use(f"sqlite:///{store_server.app.state.dashboard.root}/runpoint.db")  # let go of the test's database


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server_process(db: str, tmp_path: Path, *extra: str, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """``runpoint server --db db`` in a process group of its own on a free port; (process, URL) once it answers."""
    port = port or _free_port()
    log = open(tmp_path / f"server-{port}.log", "wb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-m", "runpoint", "server", "--db", db, "--port", str(port), *extra],
                               stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/api/store/count", timeout=1).status_code in (200, 401):  # 401: it checks tokens
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server_process(process)
            raise RuntimeError(f"runpoint server did not start: {(tmp_path / f'server-{port}.log').read_text()}")
        time.sleep(0.1)


def stop_server_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
