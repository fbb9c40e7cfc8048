"""The team server's audit log: who did what to which run, from where, and when.

:func:`record` and :func:`query` are the table's two operations. :class:`AuditBuffer` is
what the server plugs in as ``app.state.audit_sink`` (see :mod:`runpoint.server.auth`): the
routes call it on hot paths (every ``get_run``), so it only appends to a list, and a daemon
thread writes the list in one transaction every ``interval_s`` (and at :meth:`AuditBuffer.close`).
A direct insert would put a database commit (a WAL flush: 1-10 ms on a durable PostgreSQL)
on each of those requests; the price of the buffer is that a server killed with ``-9``
loses at most the last interval's entries.

The remote address comes from :data:`REMOTE_ADDRESS`, which the authentication middleware
sets for each request (the sink's signature has no request).

Example::

    buffer = AuditBuffer(accounts.record_audit)
    app.state.audit_sink = buffer.sink
    ...
    accounts.query_audit(user="ada", action="run.delete", since=time.time() - 86400)
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .accounts_db import AccountsDB
    from .auth import Principal

logger = logging.getLogger("runpoint.server")

REMOTE_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("runpoint_remote_address", default=None)
MAX_LIMIT = 100_000


@dataclass(frozen=True)
class AuditEntry:
    """One row of the audit log."""

    time: float
    user: str
    action: str
    token_id: str | None = None
    project: str | None = None
    run_id: str | None = None
    target: str | None = None
    detail: dict[str, Any] | None = None
    remote: str | None = None


_COLUMNS = ("time", "user_name", "token_id", "action", "project", "run_id", "target", "detail", "remote")


def record(db: AccountsDB, entries: Sequence[AuditEntry]) -> None:
    """Append ``entries`` in one transaction."""
    db.insert_rows("audit_log", _COLUMNS, [
        (e.time, e.user, e.token_id, e.action, e.project, e.run_id, e.target,
         json.dumps(e.detail, default=str, sort_keys=True) if e.detail is not None else None, e.remote)
        for e in entries])


def query(db: AccountsDB, *, user: str | None = None, run_id: str | None = None, action: str | None = None,
          project: str | None = None, since: float | None = None, limit: int = 100) -> list[AuditEntry]:
    """The newest ``limit`` entries matching every filter given, newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError("limit", f"must be between 1 and {MAX_LIMIT}, got {limit}")
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("user_name", user), ("run_id", run_id), ("action", action), ("project", project)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        where.append("time >= ?")
        params.append(since)
    sql = f"SELECT {', '.join(_COLUMNS)} FROM audit_log" + (f" WHERE {' AND '.join(where)}" if where else "")
    rows = db.query(sql + " ORDER BY time DESC, id DESC LIMIT ?", [*params, limit])
    return [AuditEntry(time=r["time"], user=r["user_name"], action=r["action"], token_id=r["token_id"],
                       project=r["project"], run_id=r["run_id"], target=r["target"],
                       detail=json.loads(r["detail"]) if r["detail"] is not None else None, remote=r["remote"])
            for r in rows]


class AuditBuffer:
    """Collects audit entries in memory and writes them in batches (see the module docstring).

    ``write`` is called with each batch from the flushing thread; a batch that fails to be
    written is logged (without the entries' details) and dropped, so a database outage
    cannot grow the buffer without bound.
    """

    def __init__(self, write: Callable[[Sequence[AuditEntry]], None], *, interval_s: float = 1.0,
                 max_pending: int = 5000) -> None:
        self._write = write
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._pending: list[AuditEntry] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False

    def sink(self, who: Principal, action: str, project: str | None, run_id: str | None, target: str | None,
             detail: dict[str, Any] | None) -> None:
        """An :data:`~runpoint.server.auth.AuditSink`: note the entry, write it within ``interval_s``."""
        self.add(AuditEntry(time=time.time(), user=who.user, action=action, token_id=who.token_id, project=project,
                            run_id=run_id, target=target, detail=detail, remote=REMOTE_ADDRESS.get()))

    def add(self, entry: AuditEntry) -> None:
        with self._lock:
            self._pending.append(entry)
            full = len(self._pending) >= self.max_pending
        self._ensure_thread()
        if full:
            self._wake.set()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._pid == os.getpid():  # it runs until close(): no is_alive() here
            return
        with self._lock:
            if self._closed or (self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()):
                return
            self._pid = os.getpid()  # a forked child starts its own thread
            self._thread = threading.Thread(target=self._run, name="runpoint-audit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> int:
        """Write what is pending now; the number of entries written."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except Exception as exc:  # noqa: BLE001 - the server goes on; the loss is logged
                logger.error("runpoint server: %d audit entries could not be written: %s", len(batch), exc)
                return 0
            return len(batch)

    def close(self) -> None:
        """Write what is pending and stop the thread."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(timeout=10)
        self.flush()
