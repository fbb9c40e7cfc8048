"""runpoint's one stderr handler, on the ``runpoint`` logger only.

Before it existed, runpoint's warnings reached the terminal through Python's last-resort
handler: ``runpoint: ...`` on stderr at WARNING, and nothing at all once the program
configured logging itself. The handler keeps exactly that contract by default: it writes
only when no other handler would see the record (none on the ``runpoint`` loggers, none
on the root that the record propagates to). So a program that calls
``logging.basicConfig`` or ``dictConfig`` gets runpoint's records through its own handlers,
formatted its way, never twice; and the root logger and the user's handlers are never
touched. (A ``NullHandler`` as httpx/urllib3 install would silence the warnings users see
today, so it is not used.)

``RUNPOINT_LOG_FORMAT=json`` writes one JSON object per line instead, and
``RUNPOINT_LOG_LEVEL=INFO`` (or DEBUG, ERROR...) sets the level. Setting either is an
explicit request for runpoint's own stderr output: the handler then writes whatever other
handlers exist (propagation is left as it is; set ``logging.getLogger("runpoint").propagate
= False`` to have only runpoint's lines).

Installed by ``rp.init``, ``CheckpointManager`` and the CLI, not by ``import runpoint``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import TextIO

from .formats import HumanFormatter, JsonFormatter

FORMAT_ENV = "RUNPOINT_LOG_FORMAT"
LEVEL_ENV = "RUNPOINT_LOG_LEVEL"
LOGGER_NAME = "runpoint"

_lock = threading.Lock()
_installed: "StderrHandler | None" = None


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to the current ``sys.stderr``; unless ``claimed``, only records no other handler sees."""

    runpoint_own = True

    def __init__(self, claimed: bool = False) -> None:
        super().__init__()
        self.claimed = claimed

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr (a console capture may have replaced it)

    def emit(self, record: logging.LogRecord) -> None:
        if self.claimed or not handled_elsewhere(record):
            super().emit(record)


def handled_elsewhere(record: logging.LogRecord) -> bool:
    """Whether a handler that is not runpoint's own receives ``record`` (as Python's last resort checks)."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(not getattr(handler, "runpoint_own", False) for handler in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent  # type: ignore[assignment]
    return False


def parse_level(text: str) -> int | None:
    """``"info"``, ``"WARNING"`` or ``"10"`` as a logging level; None when it is none."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    level = logging.getLevelName(text.upper())
    return level if isinstance(level, int) else None


def install() -> StderrHandler:
    """Add runpoint's stderr handler to the ``runpoint`` logger once (later calls return it).

    Example::

        install()                                       # what rp.init does
        logging.getLogger("runpoint").warning("runpoint: something")   # -> stderr
    """
    global _installed
    with _lock:
        if _installed is not None:
            return _installed
        form = os.environ.get(FORMAT_ENV, "").strip().lower()
        level_text = os.environ.get(LEVEL_ENV, "")
        level = parse_level(level_text) if level_text else None
        handler = StderrHandler(claimed=bool(form) or level is not None)
        handler.setFormatter(JsonFormatter() if form == "json" else HumanFormatter())
        handler.setLevel(level if level is not None else logging.WARNING)
        logger = logging.getLogger(LOGGER_NAME)
        if level is not None and (logger.level == logging.NOTSET or logger.level > level):
            logger.setLevel(level)  # asked for explicitly: the records must reach the handler
        logger.addHandler(handler)
        _installed = handler
    if form not in {"", "json", "human", "text"}:
        logger.warning("runpoint: %s=%r is not a log format (json or human); writing human lines", FORMAT_ENV, form)
    if level_text and level is None:
        logger.warning("runpoint: %s=%r is not a log level (DEBUG, INFO, WARNING, ERROR); using WARNING",
                       LEVEL_ENV, level_text)
    return handler


def uninstall() -> None:
    """Remove the handler (tests, and programs that want runpoint silent on stderr)."""
    global _installed
    with _lock:
        if _installed is not None:
            logging.getLogger(LOGGER_NAME).removeHandler(_installed)
            _installed = None
