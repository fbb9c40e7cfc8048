"""Clients of a runpoint server (``runpoint server``): the store over HTTP, run files, and the HTTP session under them.

Example::

    from runpoint.remote import HttpStore

    store = HttpStore("https://runpoint.example.com")  # token from $RUNPOINT_TOKEN
    print([run.id for run in store.list_runs()])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .files import RemoteFileError, RemoteFiles
    from .http import HttpSession
    from .store import HttpStore

__all__ = ["HttpSession", "HttpStore", "RemoteFileError", "RemoteFiles"]

_LAZY = {"HttpSession": ".http", "HttpStore": ".store", "RemoteFiles": ".files", "RemoteFileError": ".files"}  # httpx loads only when a client is used


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
