"""The spool's store: the embedded SQLite store that also notes every cut of a run's history.

A resumed run drops the points its killed attempt logged after the checkpoint
(:meth:`Run.rewind <runpoint.Run.rewind>`); the server must drop the same ones before it
takes the new attempt's points. The cut is noted in ``sync.db`` after it is made here,
and :func:`~runpoint.sync.push.sync_run` replays it on the server before anything newer.
"""

from __future__ import annotations

import os

from ..store.sqlite import SQLiteStore
from .state import SyncState


class SpoolStore(SQLiteStore):
    """An :class:`SQLiteStore` whose ``truncate_metrics`` is journaled for the server."""

    def __init__(self, path: str | os.PathLike[str], state: SyncState, **options: object) -> None:
        super().__init__(path, **options)  # type: ignore[arg-type]
        self._sync_state = state

    def truncate_metrics(self, run_id: str, after_step: int) -> int:
        dropped = super().truncate_metrics(run_id, after_step)
        self._sync_state.add_truncation(run_id, after_step)
        return dropped
