"""Process-wide hooks that end runs properly however the process ends.

Installed on the first ``rp.init`` (never at import):

- ``atexit``: a run still open when the interpreter exits is finished: ``failed`` with
  the traceback if an exception escaped (recorded by a wrapped ``sys.excepthook``),
  ``killed`` after Ctrl-C or SIGTERM, ``completed`` otherwise.
- SIGTERM (main thread only, and only if nobody ignores it): the open runs are told
  (their preemption hooks run, e.g. a checkpoint save), then ``SystemExit(143)`` is
  raised so ``finally`` blocks and ``with`` exits run. A handler the program had
  installed before is called instead of exiting.

SIGINT stays Python's: ``KeyboardInterrupt`` reaches ``Run.__exit__`` or the excepthook.
Forked children (DataLoader workers) inherit the handlers; they ignore runs that are not
theirs.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .run import Run

_active: list["Run"] = []
_installed = False
_owner_pid = 0
_uncaught: tuple[type[BaseException], BaseException, TracebackType | None] | None = None
_previous_excepthook: Any = None
_previous_sigterm: Any = None

HANDLED_SIGNALS = (signal.SIGTERM,)


def register(run: "Run") -> None:
    _install()
    _active.append(run)


def unregister(run: "Run") -> None:
    if run in _active:
        _active.remove(run)


def uncaught_exception() -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    return _uncaught


def _install() -> None:
    global _installed, _owner_pid, _previous_excepthook, _previous_sigterm
    if _installed and _owner_pid == os.getpid():
        return
    _installed = True
    _owner_pid = os.getpid()
    atexit.register(_at_exit)
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGTERM)
        if current is not signal.SIG_IGN:
            _previous_sigterm = current
            signal.signal(signal.SIGTERM, _on_signal)


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    global _uncaught
    _uncaught = (kind, value, tb)
    (_previous_excepthook or sys.__excepthook__)(kind, value, tb)


def _at_exit() -> None:
    if os.getpid() != _owner_pid:
        return
    for run in list(_active):
        run._finish_at_exit()


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if os.getpid() != _owner_pid:  # a forked child: behave as if we were not here
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    for run in list(_active):
        run._on_signal(signum)
    previous = _previous_sigterm
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    raise SystemExit(128 + signum)
