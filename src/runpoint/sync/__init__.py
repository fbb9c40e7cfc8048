"""Replicating runs from a local root to a team server: the offline-first half of ``root="https://…"``.

A training process with a server root records into a local *spool* (an ordinary root,
:mod:`runpoint.sync.spool`) at local speed, and a :class:`Replicator` thread ships what
is new to the server every second; ``runpoint sync`` ships runs recorded offline or left
behind by a process that died. Both run :func:`sync_run`, which compares the local run
with what the server holds and sends only the difference, so it is idempotent: syncing a
run twice stores it once.
"""

from .push import SyncReport, SyncTarget, sync_run
from .replicator import Replicator
from .spool import spool_root
from .state import SyncState

__all__ = ["Replicator", "SyncReport", "SyncState", "SyncTarget", "spool_root", "sync_run"]
