"""Objects that must behave differently in a forked child.

Threads do not survive ``fork()``, and SQLite connections and buffered lines must not be
used twice. A writer, a console capture and a store each register a method here, called
in the child right after a fork (a DataLoader worker, say); the registry holds them
weakly, so it keeps nothing alive.
"""

from __future__ import annotations

import os
import weakref
from typing import Any, Callable

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
