"""Where the team server's accounts live: the store's database (PostgreSQL) or a file beside it (SQLite).

:func:`accounts_location` maps the ``--db`` of ``runpoint server`` to the accounts database:

    postgresql://host/db         the same database, tables of their own (``accounts_*``, ``audit_log``)
    sqlite:////srv/rp/runpoint.db   /srv/rp/accounts.db   (``<name>.accounts.db`` beside any other name)
    /srv/rp  (a root directory)     /srv/rp/accounts.db

Why a separate SQLite file and not new tables in ``runpoint.db``: SQLite has one writer per
file, and the audit log is written on every read of a run, so in the store's file it would
queue behind (and hold up) the training writers' ``BEGIN IMMEDIATE`` flushes; a root copied
or exported to share results must not carry token hashes and the audit log; and the store's
``PRAGMA user_version`` migrations stay the store's alone. PostgreSQL has row locks, so one
database holds both there (one backup, one connection string).

:class:`AccountsDB` gives both engines one small interface: SQL written with ``?``
placeholders (rewritten to ``%s`` for psycopg), one connection per thread, none across
``fork()``, errors as :class:`~runpoint.errors.StoreError` without credentials.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence

from .._util.forksafe import call_after_fork
from .._util.uri import without_credentials
from ..errors import StoreError

SQLITE_NAME = "accounts.db"
STORE_SQLITE_NAME = "runpoint.db"
BUSY_TIMEOUT_S = 30.0

Row = dict[str, Any]


def accounts_location(db: str | os.PathLike[str]) -> str:
    """The accounts database that goes with the store ``db``: a PostgreSQL URL or a SQLite path.

    Example::

        >>> accounts_location("sqlite:////srv/rp/runpoint.db")
        '/srv/rp/accounts.db'
        >>> accounts_location("postgresql://db.lan/runpoint")
        'postgresql://db.lan/runpoint'
    """
    text = os.fspath(db)
    scheme, sep, _ = text.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        return text
    if sep and scheme == "sqlite":
        store_file = Path(text[len("sqlite:///"):] if text.startswith("sqlite:///") else text[len("sqlite://"):])
        name = SQLITE_NAME if store_file.name == STORE_SQLITE_NAME else f"{store_file.stem}.{SQLITE_NAME}"
        return str(store_file.with_name(name))
    if sep:
        raise StoreError(f"accounts need a postgresql:// or sqlite:// database or a root directory, not {scheme}://",
                         without_credentials(text))
    return str(Path(text) / SQLITE_NAME)


class AccountsDB:
    """Connections to the accounts database (see the module docstring).

    Example::

        db = AccountsDB("postgresql://db.lan/runpoint")
        rows = db.query("SELECT name FROM accounts_users WHERE disabled = ?", (False,))
    """

    def __init__(self, store_db: str | os.PathLike[str]) -> None:
        self.target = accounts_location(store_db)
        self.is_postgres = "://" in self.target
        self.location = without_credentials(self.target)
        self._local = threading.local()
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self._closed = False
        if not self.is_postgres and not Path(self.target).parent.is_dir():
            # a typo must not create directories: the server's store creates its own first
            raise StoreError(f"no directory {Path(self.target).parent} for the accounts database", self.location)
        call_after_fork(self._forget_connections_after_fork)

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> Any:
        if self.is_postgres:
            import psycopg
            from psycopg.rows import dict_row

            return psycopg.connect(self.target, autocommit=True, row_factory=dict_row)
        conn = sqlite3.connect(self.target, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        _wal(conn)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError("the accounts database was closed", self.location)
        with self._errors():
            conn = self._connect()
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def _forget_connections_after_fork(self) -> None:
        # the child must not use or close the parent's sockets; it opens its own when needed
        self._connections = []
        self._local = threading.local()
        self._lock = threading.Lock()

    def _drop_broken(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self.is_postgres and (conn.broken or conn.closed):
            self._local.conn = None
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{self.location}: {exc}", self.location) from exc
        except Exception as exc:
            if type(exc).__module__.startswith("psycopg"):
                self._drop_broken()
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise StoreError(f"{self.location}: {first}", self.location) from exc
            raise

    def close(self) -> None:
        """Close every connection; using the object afterwards raises StoreError."""
        self._closed = True
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._local = threading.local()

    # -- statements --------------------------------------------------------------------

    def sql(self, sql: str) -> str:
        """``sql`` with its ``?`` placeholders in this engine's style."""
        return sql.replace("?", "%s") if self.is_postgres else sql

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on this thread's connection (``BEGIN IMMEDIATE`` on SQLite)."""
        conn = self._conn()
        with self._errors():
            if self.is_postgres:
                with conn.transaction():
                    yield conn
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement (its own transaction); the number of rows it changed."""
        conn = self._conn()
        with self._errors():
            return int(conn.execute(self.sql(sql), tuple(params)).rowcount)

    def insert_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Append ``rows`` to ``table`` in one transaction (PostgreSQL: one COPY, ~10x a row-by-row insert)."""
        if not rows:
            return
        names = ", ".join(columns)
        with self.transaction() as conn:
            if self.is_postgres:
                with conn.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" for _ in columns)
                conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", [tuple(row) for row in rows])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """The rows of a SELECT, as dicts."""
        conn = self._conn()
        with self._errors():
            return [dict(row) for row in conn.execute(self.sql(sql), tuple(params)).fetchall()]

    def run_script(self, conn: Any, script: str) -> None:
        """Several statements at once, inside the caller's transaction on ``conn``."""
        if self.is_postgres:
            conn.execute(script.encode())  # bytes: sent as one simple query, several statements allowed
        else:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)


def _wal(conn: sqlite3.Connection) -> None:
    """Turn on WAL; several first opens at once may find the switch locked without waiting (SQLite does not
    call the busy handler for it), so it is retried within the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
