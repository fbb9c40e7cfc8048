"""Connections of a PostgreSQL store: one per thread, none across fork(), errors as StoreError.

Each thread (a run's writer, the caller, a web server's workers) gets its own psycopg
connection in autocommit mode; a write is one explicit transaction (``with
self._transaction() as conn``). A forked child (a DataLoader worker) must not use or
close its parent's connections: closing one there would send PostgreSQL a Terminate
message on the parent's socket and end the parent's session. So the child points each
inherited socket at /dev/null (libpq's goodbye goes nowhere when the object is
collected) and opens connections of its own when it needs them.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row

from ..._util.forksafe import call_after_fork, no_fork
from ..._util.uri import without_credentials
from ...errors import StoreError

Connection = psycopg.Connection[dict[str, Any]]


def _detach(conn: Connection) -> None:
    """Make an inherited connection harmless in a forked child: its socket becomes /dev/null."""
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class PostgresConnections:
    """The connection handling of :class:`~runpoint.store.postgres.PostgresStore` (a base class)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self.location = without_credentials(dsn)
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._owners: dict[int, threading.Thread] = {}  # id(connection) -> the thread it belongs to
        self._orphans: list[Connection] = []  # inherited across fork(): kept, never closed
        self._lock = threading.Lock()
        self._closed = False
        call_after_fork(self._forget_connections_after_fork)

    def _conn(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed:
            return conn
        if self._closed:
            raise StoreError("the store was closed", self.location)
        with self._translate_errors():
            conn = psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row)
        self._local.conn = conn
        with self._lock:
            self._close_those_of_ended_threads()
            self._connections.append(conn)
            self._owners[id(conn)] = threading.current_thread()
        return conn

    def _close_those_of_ended_threads(self) -> None:
        """Close the connections of threads that ended (a web server's pool retires idle threads): no leak."""
        ended = [c for c in self._connections if not self._owners.get(id(c), threading.current_thread()).is_alive()]
        for conn in ended:
            self._connections.remove(conn)
            self._owners.pop(id(conn), None)
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _forget_connections_after_fork(self) -> None:
        for conn in self._connections:
            _detach(conn)
        self._orphans.extend(self._connections)
        self._connections = []
        self._owners = {}
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"{self.location}: {message}", self.location) from exc

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """One transaction on this thread's connection: committed at the end, rolled back on an error.

        A connection that broke (the server restarted, the network dropped) is dropped, so
        the next call connects again; the caller sees a :class:`StoreError` and may retry.
        """
        conn = self._conn()
        try:
            with self._translate_errors(), no_fork(), conn.transaction():
                yield conn
        except StoreError:
            if conn.broken or conn.closed:
                self._drop(conn)
            raise

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """This thread's connection for reads outside a transaction, errors translated."""
        conn = self._conn()
        try:
            with self._translate_errors():
                yield conn
        except StoreError:
            if conn.broken or conn.closed:
                self._drop(conn)
            raise

    def _drop(self, conn: Connection) -> None:
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._connections:
                self._connections.remove(conn)
        try:
            conn.close()
        except psycopg.Error:
            pass

    def close(self) -> None:
        """Close every connection this store opened; the store must not be used afterwards."""
        self._closed = True
        self._release_connections()

    def _release_connections(self) -> None:
        """Close every connection; the next read or write opens a new one (a finished run calls this)."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._owners = {}
            self._local = threading.local()
        for conn in connections:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def __enter__(self) -> "PostgresConnections":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
