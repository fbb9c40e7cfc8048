"""``logs/runpoint.log``: runpoint's own events of one run, one JSON object per line.

One handler on the ``runpoint`` logger (:class:`RunLogRouter`) sends each record to the
file of the run it belongs to: the run its ``run_id`` field names, or, for a record
without one, the run open in this process when exactly one is (with two runs open such a
record belongs to neither: nothing of one run ever lands in the other's file).

Events are written at INFO and above (lower where ``RUNPOINT_LOG_LEVEL`` asks) whatever the
``runpoint`` logger's level: :func:`emit` hands a record the logger would drop to the run
logs alone, so the user's own handlers see exactly what their levels let through.

Example::

    emit(logger, logging.INFO, "checkpoint.commit", "runpoint: saved step %d", 100,
         run_id=run.id, step=100, bytes=4096, seconds=0.2)
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from .formats import JsonFormatter
from .stderr import LEVEL_ENV, LOGGER_NAME, parse_level

DEFAULT_LEVEL = logging.INFO


class _RunLogFile:
    def __init__(self, path: Path, redact: Callable[[str], str] | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._formatter = JsonFormatter(redact)
        self._lock = threading.Lock()

    def write(self, record: logging.LogRecord) -> None:
        data = (self._formatter.format(record) + "\n").encode("utf-8", "replace")
        with self._lock:
            if self._fd is not None:
                os.write(self._fd, data)  # one write of a whole line: O_APPEND keeps lines whole

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class RunLogRouter(logging.Handler):
    """Sends each record to the ``runpoint.log`` of the run it belongs to."""

    runpoint_own = True

    def __init__(self, level: int) -> None:
        super().__init__(level)
        self._files: dict[str, _RunLogFile] = {}
        self._files_lock = threading.Lock()

    @property
    def open_runs(self) -> int:
        return len(self._files)

    def add(self, run_id: str, path: Path, redact: Callable[[str], str] | None) -> None:
        opened = _RunLogFile(path, redact)
        with self._files_lock:
            previous = self._files.get(run_id)
            self._files = {**self._files, run_id: opened}
        if previous is not None:
            previous.close()

    def remove(self, run_id: str) -> None:
        with self._files_lock:
            files = dict(self._files)
            closed = files.pop(run_id, None)
            self._files = files
        if closed is not None:
            closed.close()

    def emit(self, record: logging.LogRecord) -> None:
        files = self._files  # replaced, never changed in place: no lock to read it
        run_id = getattr(record, "run_id", None)
        if run_id is None:
            target = next(iter(files.values())) if len(files) == 1 else None
        else:
            target = files.get(str(run_id))
        if target is None:
            return
        try:
            target.write(record)
        except Exception:
            self.handleError(record)


_router: RunLogRouter | None = None
_router_lock = threading.Lock()


def router() -> RunLogRouter:
    """The process's router, on the ``runpoint`` logger from the first call."""
    global _router
    with _router_lock:
        if _router is None:
            asked = parse_level(os.environ.get(LEVEL_ENV, "") or "INFO")
            level = min(DEFAULT_LEVEL, asked if asked is not None else DEFAULT_LEVEL)
            _router = RunLogRouter(level)
            logging.getLogger(LOGGER_NAME).addHandler(_router)
        return _router


def open_run_log(run_id: str, path: Path, redact: Callable[[str], str] | None = None) -> None:
    """Start writing the events of ``run_id`` to ``path`` (appended: a resumed run keeps its history)."""
    router().add(run_id, path, redact)


def close_run_log(run_id: str) -> None:
    """Stop writing the events of ``run_id``; its file is closed."""
    if _router is not None:
        _router.remove(run_id)


def emit(logger: logging.Logger, level: int, event: str, message: str, *args: Any,
         exc_info: Any = None, **fields: Any) -> None:
    """Log ``message % args`` with ``event`` and ``fields`` as structured fields.

    Also reaches the open runs' ``runpoint.log`` when ``logger`` is set to drop ``level``
    (an INFO event under the default WARNING), without reaching any other handler.
    """
    extra = {"event": event, **fields}
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, exc_info=exc_info, extra=extra, stacklevel=2)
        return
    current = _router
    if current is None or not current.open_runs or level < current.level:
        return
    if exc_info is True:
        import sys

        exc_info = sys.exc_info()
    record = logger.makeRecord(logger.name, level, "(runpoint)", 0, message, args, exc_info, extra=extra)
    current.handle(record)
