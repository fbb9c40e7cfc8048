"""Objects that must behave differently in a forked child.

Threads do not survive ``fork()``, and SQLite connections and buffered lines must not be
used twice. A writer, a console capture and a store each register a method here, called
in the child right after a fork (a DataLoader worker, say); the registry holds them
weakly, so it keeps nothing alive.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Iterator

_HOOKS: list[weakref.WeakMethod[Callable[[], Any]]] = []


def call_after_fork(method: Callable[[], Any]) -> None:
    """Call the bound ``method`` in the child process after every ``fork()``."""
    if len(_HOOKS) > 64:
        _HOOKS[:] = [ref for ref in _HOOKS if ref() is not None]
    _HOOKS.append(weakref.WeakMethod(method))


def _in_child() -> None:
    for ref in list(_HOOKS):
        method = ref()
        if method is not None:
            method()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_in_child)


# -- no fork() in the middle of a store operation ------------------------------------
#
# SQLite keeps its mutexes and the lock state of every open database file in process-wide
# structures, and a forked child inherits them as they were. If the run's writer thread is
# inside SQLite (a write transaction, or any call holding one of its mutexes) when another
# thread forks, the child can wait forever: on a mutex nobody will release, or behind a
# write lock held by a connection that does not exist there. So store operations of
# background threads run inside ``no_fork()``, and fork() waits (at most MAX_FORK_WAIT_S)
# until none is running.

MAX_FORK_WAIT_S = 5.0

_gate = threading.Condition(threading.Lock())
_running = 0
_forking = False
_depth = threading.local()


@contextmanager
def no_fork() -> Iterator[None]:
    """Hold off ``fork()`` while the block runs (re-entrant; waits while a fork is starting)."""
    global _running
    depth = getattr(_depth, "n", 0)
    if depth:
        _depth.n = depth + 1
        try:
            yield
        finally:
            _depth.n = depth
        return
    with _gate:
        while _forking:
            _gate.wait()
        _running += 1
    _depth.n = 1
    try:
        yield
    finally:
        _depth.n = 0
        with _gate:
            _running -= 1
            if _running == 0:
                _gate.notify_all()


def _before_fork() -> None:
    global _forking
    _gate.acquire()
    _forking = True
    _gate.wait_for(lambda: _running == 0, timeout=MAX_FORK_WAIT_S)  # the lock is released while it waits


def _after_fork_in_parent() -> None:
    global _forking
    _forking = False
    _gate.notify_all()
    _gate.release()


def _after_fork_in_child() -> None:
    global _gate, _running, _forking, _depth
    _gate = threading.Condition(threading.Lock())  # the parent's other threads are gone, and their operations
    _running = 0
    _forking = False
    _depth = threading.local()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
