"""``rp.init(root="https://…")``: record into the server's spool, and ship the run from there.

Example::

    location = server_location(root)            # None for a local root
    if location: root, store = open_spool(location)
    ...
    attach_replicator(run, root, location)      # rank 0 only
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..artifacts.paths import DB_NAME, ROOT_ENV
from ..store.base import Store
from .push import SyncTarget
from .replicator import Replicator
from .spool import is_server_url, server_base, spool_root
from .spool_store import SpoolStore
from .state import SyncState

logger = logging.getLogger("runpoint")


def server_location(root: str | os.PathLike[str] | None) -> str | None:
    """The server's base URL when ``root`` (or ``$RUNPOINT_ROOT`` without one) is http(s)://, else None."""
    text = os.fspath(root) if root is not None else os.environ.get(ROOT_ENV)
    return server_base(text) if text is not None and is_server_url(text) else None


def open_spool(server: str) -> tuple[Path, Store]:
    """The spool root for ``server`` and its journaling store."""
    root = spool_root(server)
    return root, SpoolStore(root / DB_NAME, SyncState(root))


def connect(server: str, token: str | None = None) -> SyncTarget:
    """The server's store and files, through its HTTP API (token: ``$RUNPOINT_TOKEN`` when None)."""
    from ..remote.files import RemoteFiles
    from ..remote.store import HttpStore

    return SyncTarget(HttpStore(server, token=token), RemoteFiles(server, token=token))


def attach_replicator(run: Any, root: Path, server: str) -> Replicator | None:
    """Start shipping ``run`` to ``server``; its last pass runs after the run is closed."""
    replicator = Replicator(root, run.id, lambda: connect(server), server=server)
    if not replicator.start():
        logger.warning("runpoint: run %s is being synced by another process; this one only records it", run.id)
        return None
    run._after_close.append(replicator.finish)
    return replicator
