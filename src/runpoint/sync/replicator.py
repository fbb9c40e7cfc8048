"""The thread that ships a live run to its server while it trains.

Every :data:`INTERVAL` seconds it runs :func:`~runpoint.sync.push.sync_run` over the run's
spool. ``run.log`` never waits for it: the training loop writes to the local spool, and
this thread reads the spool with connections of its own. When the server cannot be
reached it warns once, keeps the run recording locally, and retries with backoff (up to
:data:`MAX_BACKOFF` seconds); when the server is back it catches up and says so. At the
end of the run it makes a last pass, bounded by ``$RUNPOINT_SYNC_TIMEOUT`` (60 s): what
did not make it stays in the spool for ``runpoint sync``.

Example::

    replicator = Replicator(spool, run.id, lambda: SyncTarget(HttpStore(url), RemoteFiles(url)), server=url)
    replicator.start()
    ...
    replicator.finish()
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Callable

from ..errors import AccessDeniedError
from ..logs.run_log import emit
from ..store.base import Store
from .push import SyncReport, SyncTarget, sync_run
from .state import SyncState

logger = logging.getLogger("runpoint")

INTERVAL = 1.0
MAX_BACKOFF = 30.0
TIMEOUT_ENV = "RUNPOINT_SYNC_TIMEOUT"
INTERVAL_ENV = "RUNPOINT_SYNC_INTERVAL"


class Replicator:
    """Ships one run from a local root to a server in the background (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        run_id: str,
        connect: Callable[[], SyncTarget],
        *,
        server: str,
        open_source: Callable[[], Store] | None = None,
        interval: float | None = None,
    ) -> None:
        self.root, self.run_id, self.server = Path(root), run_id, server
        self._connect = connect
        self._open_source = open_source or (lambda: _open_local(self.root))
        self.interval = interval if interval is not None else float(os.environ.get(INTERVAL_ENV) or INTERVAL)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._locks = ExitStack()
        self.state = SyncState(self.root)
        self.degraded_since: float | None = None
        self.last_report: SyncReport | None = None
        self.last_error: BaseException | None = None

    def start(self) -> bool:
        """Take the run's sync lock and start the thread; False (and no thread) if another process syncs it."""
        if not self._locks.enter_context(self.state.lock(self.run_id)):
            self._locks.close()
            return False
        self._thread = threading.Thread(target=self._loop, name=f"runpoint-sync-{self.run_id}", daemon=True)
        self._thread.start()
        return True

    def _loop(self) -> None:
        source = self._open_source()
        target: SyncTarget | None = None
        delay = self.interval
        try:
            while not self._stop.wait(delay):
                try:
                    target = target or self._connect()
                    self._pass(source, target, final=False)
                    delay = self.interval
                except Exception as exc:  # the server or the network: keep recording, retry later
                    self._degraded(exc)
                    delay = min(MAX_BACKOFF, max(self.interval, delay * 2))
        finally:
            source.close()

    def _pass(self, source: Store, target: SyncTarget, *, final: bool) -> SyncReport:
        report = sync_run(source, self.root, self.state, target, self.run_id, final=final)
        self.last_report, self.last_error = report, None
        if self.degraded_since is not None:
            emit(logger, logging.WARNING, "sync.caught_up", "runpoint: run %s: the server at %s is reachable again; "
                 "caught up after %.0f s", self.run_id, self.server, time.time() - self.degraded_since,
                 run_id=self.run_id, server=self.server, seconds=time.time() - self.degraded_since)
            self.degraded_since = None
        return report

    def _degraded(self, exc: BaseException) -> None:
        self.last_error = exc
        self.state.update(self.run_id, error=f"{type(exc).__name__}: {exc}"[:500])
        if self.degraded_since is None:
            self.degraded_since = time.time()
            if isinstance(exc, AccessDeniedError):  # not an outage: waiting will not mend it
                emit(logger, logging.WARNING, "sync.refused",
                     "runpoint: run %s: the server at %s refused it (%s); the run keeps recording locally in %s: "
                     "fix $RUNPOINT_TOKEN, then send it with: runpoint sync %s",
                     self.run_id, self.server, _short(exc), self.root, self.run_id, run_id=self.run_id, server=self.server)
                return
            emit(logger, logging.WARNING, "sync.outage",
                 "runpoint: run %s: cannot reach the server at %s (%s); the run keeps recording locally in %s "
                 "and is sent when the server is back", self.run_id, self.server, _short(exc), self.root,
                 run_id=self.run_id, server=self.server, error=_short(exc))

    def finish(self, timeout: float | None = None) -> bool:
        """Stop the thread, make a last pass (retrying until ``timeout``); True when the run is whole on the server."""
        if self._thread is None:
            return False
        self._stop.set()
        self._thread.join()
        self._thread = None
        limit = timeout if timeout is not None else float(os.environ.get(TIMEOUT_ENV) or 60)
        deadline = time.monotonic() + limit
        delay = 0.5
        source = self._open_source()
        try:
            while True:
                try:
                    report = self._pass(source, self._connect(), final=True)
                    if report.complete:
                        return True
                except Exception as exc:
                    self._degraded(exc)
                if time.monotonic() + delay > deadline:
                    break
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        finally:
            source.close()
            self._locks.close()
        emit(logger, logging.WARNING, "sync.incomplete",
             "runpoint: run %s is recorded in %s but not all of it reached %s (%s); send it with: runpoint sync %s",
             self.run_id, self.root, self.server, _short(self.last_error) if self.last_error else "not finished",
             self.run_id, run_id=self.run_id, server=self.server)
        return False


def _open_local(root: Path) -> Store:
    from ..store import open_store

    return open_store(root, create=False)


def _short(exc: BaseException | None) -> str:
    text = str(exc).splitlines()[0] if exc is not None and str(exc) else type(exc).__name__
    return text[:400]
