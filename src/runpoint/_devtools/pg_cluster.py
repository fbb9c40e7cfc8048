"""A throwaway PostgreSQL server in a temp dir, for the tests and the benchmarks.

``initdb`` into a temp dir owned by the ``postgres`` user (initdb refuses root), ``pg_ctl
start`` on a free 127.0.0.1 port with its unix socket in that dir, trust auth inside the
throwaway cluster, durability off (``fsync=off``: the cluster is deleted afterwards), a
role and database ``runpoint``. ``stop`` kills it (``pg_ctl stop -m immediate``) and removes
the dir.

Example::

    bin_dir = binaries()
    cluster = TempCluster(bin_dir)
    cluster.start()
    try:
        store = open_store(cluster.url())
    finally:
        cluster.stop()
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROLE = "runpoint"


def binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    return None


def as_postgres(command: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TempCluster:
    """One initdb'd, started cluster in a temp dir."""

    def __init__(self, bin_dir: Path, *, max_connections: int = 200) -> None:
        self.bin_dir = bin_dir
        self.max_connections = max_connections
        self.dir = Path(tempfile.mkdtemp(prefix="runpoint-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.running = False
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")

    def _run(self, command: list[str]) -> None:
        subprocess.run(as_postgres(command), check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._run([str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N",
                   "-E", "UTF8", "--locale=C"])
        self._start_server()
        self.admin(f"CREATE ROLE {ROLE} LOGIN CREATEDB", f"CREATE DATABASE {ROLE} OWNER {ROLE}")

    def restart(self, down_s: float = 0.0) -> None:
        """Stop the server as an operator would (``-m fast``), wait ``down_s``, start it again: same port, same data."""
        self._run([str(self.bin_dir / "pg_ctl"), "stop", "-m", "fast", "-w", "-D", str(self.data)])
        self.running = False
        time.sleep(down_s)
        self._start_server()

    def _start_server(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
                   " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                   f" -c max_connections={self.max_connections}")
        try:
            self._run([str(self.bin_dir / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.data),
                       "-l", str(self.dir / "server.log"), "-o", options])
        except subprocess.CalledProcessError as exc:
            log = (self.dir / "server.log").read_text() if (self.dir / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {exc.stderr}\n{log}") from exc
        self.running = True

    def url(self, database: str = ROLE, user: str = ROLE) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, owner: str = ROLE) -> str:
        """A new empty database owned by ``owner``; its URL."""
        self.admin(f"CREATE DATABASE {name} OWNER {owner}")
        return self.url(name, owner)

    def admin(self, *statements: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.url(database, "postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]  # statements are ours, not user input

    def stop(self) -> None:
        if self.running:
            self.running = False
            subprocess.run(as_postgres([str(self.bin_dir / "pg_ctl"), "stop", "-m", "immediate", "-D", str(self.data)]),
                           capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
