"""A real PostgreSQL server for the tests: one temporary cluster per test session (per xdist worker).

``initdb`` into a temp dir owned by the ``postgres`` user (initdb refuses root), ``pg_ctl
start`` on a free 127.0.0.1 port with its unix socket in that dir, trust auth inside the
throwaway cluster, durability off (``fsync=off``: the cluster is deleted afterwards). Each
test asking for ``postgres_url`` gets a database of its own, dropped after it, copied from a
template that the store's migrations ran on once (``postgres_empty_url``: one without them). The
server is stopped (``pg_ctl stop -m immediate``) and its dir removed at the end of the
session, and by an ``atexit`` hook if the session is interrupted before its teardown.
Tests skip only when PostgreSQL is not installed.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

ROLE = "runpoint"
TEMPLATE = "runpoint_template"  # migrated once per session; each test's database is a copy
_databases = itertools.count()


def _binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TempCluster:
    """One initdb'd, started cluster in a temp dir."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="runpoint-pg-"))
        self.data = self.dir / "data"
        self.port = _free_port()
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def start(self) -> None:
        run = lambda command: subprocess.run(_as_postgres(command), check=True, capture_output=True, text=True)  # noqa: E731
        run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N",
             "-E", "UTF8", "--locale=C"])
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            run([str(self.bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                 "-l", str(self.dir / "server.log"), "-o", options])
        except subprocess.CalledProcessError as exc:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr}\n{log}") from exc
        self.running = True
        self.admin(f"CREATE ROLE {ROLE} LOGIN CREATEDB", f"CREATE DATABASE {ROLE} OWNER {ROLE}")

    def url(self, database: str = ROLE, user: str = ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def admin(self, *statements: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database, "postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def stop(self) -> None:
        if self.running:
            self.running = False
            subprocess.run(_as_postgres([str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)]),
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The URL of a running throwaway PostgreSQL (role and database ``runpoint``) for the session."""
    bin_dir = _binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb on PATH or in /usr/lib/postgresql/*/bin)")
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install 'runpoint[server]')")
    cluster = TempCluster(bin_dir)
    atexit.register(cluster.stop)  # an interrupted session that skips the teardown
    try:
        cluster.start()
        from runpoint.store.postgres import PostgresStore

        cluster.admin(f"CREATE DATABASE {TEMPLATE} OWNER {ROLE}")
        PostgresStore(cluster.url(TEMPLATE)).close()
        yield cluster.url()
    finally:
        cluster.stop()


def _database_of_its_own(postgres_dsn: str, template: str) -> Iterator[str]:
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
    yield postgres_dsn.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def postgres_url(postgres_dsn: str) -> Iterator[str]:
    """The URL of a database of this test's own with an empty runpoint store in it, dropped afterwards."""
    yield from _database_of_its_own(postgres_dsn, TEMPLATE)


@pytest.fixture
def postgres_empty_url(postgres_dsn: str) -> Iterator[str]:
    """The URL of an empty database of this test's own (no tables), dropped afterwards."""
    yield from _database_of_its_own(postgres_dsn, "template0")
