"""Process-wide hooks that end runs properly however the process ends.

Installed on the first ``rp.init`` (never at import):

- ``atexit``: a run still open when the interpreter exits is finished: ``failed`` with
  the traceback if an exception escaped (recorded by a wrapped ``sys.excepthook``),
  ``killed`` after Ctrl-C or SIGTERM, ``completed`` otherwise.
- SIGTERM (main thread only, and only if nobody ignores it): the open runs are told
  (their preemption hooks run, e.g. a checkpoint save), then ``SystemExit(143)`` is
  raised so ``finally`` blocks and ``with`` exits run. A handler the program had
  installed before is called instead of exiting.

:func:`handle_signal` extends the same treatment to another signal (the checkpoint
manager asks for SIGUSR1, which SLURM sends before a job's time limit), and
:func:`add_signal_callback` lets code without a run (a checkpoint manager over a plain
directory) be told too.

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
from typing import Any, Callable, Protocol


class Member(Protocol):
    """What the lifecycle needs of a run: its id and how to end it."""

    id: str

    def _finish_at_exit(self) -> None: ...

    def _on_signal(self, signum: int) -> bool: ...


_active: list[Member] = []
_installed = False
_owner_pid = 0
_uncaught: tuple[type[BaseException], BaseException, TracebackType | None] | None = None
_previous_excepthook: Any = None
_previous_handlers: dict[int, Any] = {}  # signal -> the handler that was there before ours
_callbacks: list[Callable[[int], Any]] = []  # return True to defer the exit (see exit_for_signal)
_deferred: set[int] = set()  # signals whose exit waits for a hook

HANDLED_SIGNALS = (signal.SIGTERM,)


def register(run: Member) -> None:
    _install()
    _active.append(run)


def unregister(run: Member) -> None:
    if run in _active:
        _active.remove(run)


def active_run(run_id: str) -> Member | None:
    """The run ``run_id`` if this process is recording it, else None."""
    return next((run for run in _active if run.id == run_id), None)


def uncaught_exception() -> tuple[type[BaseException], BaseException, TracebackType | None] | None:
    return _uncaught


def handle_signal(signum: int) -> bool:
    """Treat ``signum`` like SIGTERM: tell runs and callbacks, then exit. False if it cannot.

    Only the main thread can install handlers, and a signal the program ignores stays
    ignored.
    """
    _adopt_process()
    if signum in _previous_handlers and signal.getsignal(signum) is _on_signal:
        return True
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signum)
    if current is signal.SIG_IGN:
        return False
    if current is not _on_signal:  # ours already (inherited over fork): keep the handler it wraps
        _previous_handlers[signum] = current
    signal.signal(signum, _on_signal)
    return True


def add_signal_callback(callback: Callable[[int], Any], signals: tuple[int, ...] = HANDLED_SIGNALS) -> None:
    """Call ``callback(signum)`` when one of ``signals`` arrives, after the runs' hooks."""
    for signum in signals:
        handle_signal(signum)
    _callbacks.append(callback)


def remove_signal_callback(callback: Callable[[int], Any]) -> None:
    if callback in _callbacks:
        _callbacks.remove(callback)


def _adopt_process() -> None:
    """Make this process the owner: on first use, or in a forked child, whose parent's runs are not its own."""
    global _owner_pid, _uncaught
    if os.getpid() == _owner_pid:
        return
    _active.clear()
    _callbacks.clear()
    _deferred.clear()
    _uncaught = None
    _owner_pid = os.getpid()


def _install() -> None:
    global _installed, _previous_excepthook
    _adopt_process()
    if not _installed:
        # once per interpreter: a forked child inherits the atexit hook and the excepthook
        # wrapper; wrapping again would make the hook call itself, and _at_exit run twice
        _installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
    handle_signal(signal.SIGTERM)


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
    if signum in _deferred:  # a second signal while a deferred save is awaited: exit now
        exit_for_signal(signum, frame)
        return
    defer = False
    for run in list(_active):
        defer = bool(run._on_signal(signum)) or defer
    for callback in list(_callbacks):
        try:
            defer = bool(callback(signum)) or defer
        except Exception:
            import logging

            logging.getLogger("runpoint").exception("runpoint: a signal callback failed")
    if defer:  # a hook saves at the next step boundary, then calls exit_for_signal()
        _deferred.add(signum)
        return
    exit_for_signal(signum, frame)


def exit_for_signal(signum: int, frame: FrameType | None = None) -> None:
    """End the process for ``signum`` as the handler would: the previous handler, or SystemExit."""
    _deferred.discard(signum)
    previous = _previous_handlers.pop(signum, None)
    signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
        return
    raise SystemExit(128 + signum)
