"""How a manager saves in a multi-rank job: sharded, synchronously or in the background.

Every collective of a save runs over the job's checkpoint group (:mod:`runpoint.distributed.groups`),
never the default group that training's collectives use. A synchronous save prepares,
writes and commits on the calling thread. An async one (``async_save=True``) prepares and
stages to host memory (:mod:`._sharded_stage`) on the calling thread, the only part
``save()`` waits for, then writes and commits on the :class:`~._async.BackgroundSaver`'s
thread, on every rank at once. One save is in flight: the next ``save()`` first waits for
it, and every rank learns whether any rank's failed, so an error raises on every rank.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..artifacts.manifest import CheckpointInfo
from ..distributed import all_gather_objects, over
from ..errors import CheckpointError
from ._async import BackgroundSaver
from ._sharded_stage import stage
from .save_timing import record_save_seconds
from .sharded import PreparedSave, commit_sharded, prepare_sharded, raise_for_ranks

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ..handle import RunHandle
    from .directory import CheckpointDirectory
    from .ranks import DistributedProcess


class ShardedSaves:
    """The sharded saves of one manager (on every rank)."""

    def __init__(self, storage: "Artifacts", directory: "CheckpointDirectory", process: "DistributedProcess",
                 run: "RunHandle | None", saver: BackgroundSaver | None, lock: threading.RLock,
                 after_commit: Callable[[CheckpointInfo], None]) -> None:
        self._storage, self._dir, self._process, self._run = storage, directory, process, run
        self._saver, self._lock, self._after_commit = saver, lock, after_commit
        self.committed: set[int] = set()  # sequences committed by this manager

    def save(self, step: int, state: Mapping[str, Any], metrics: dict[str, float],
             starting: Callable[[int], None]) -> CheckpointInfo | None:
        """Save ``state`` as ``step`` on every rank; None when it commits in the background."""
        groups = self._process.together("save")
        with over(groups.data):
            self._previous_outcome()
            step = self._process.agree_on_step(step)
            starting(step)
            prepared = prepare_sharded(self._process, step, state)
            if self._saver is None:
                return self._commit(prepared, metrics)
            staged = stage(prepared, self._saver.buffers)

        def in_background() -> CheckpointInfo:
            with over(groups.data):
                return self._commit(staged, metrics)

        self._saver.submit(in_background)
        return None

    def _commit(self, prepared: PreparedSave, metrics: dict[str, float]) -> CheckpointInfo:
        started = time.monotonic()
        with self._lock:
            info = commit_sharded(self._storage, self._dir, self._process, self._run, prepared, metrics,
                                  self._after_commit)
        record_save_seconds(self._run, info.step, started, coordinates=self._process.coordinates)
        self.committed.add(info.sequence)
        return info

    def _previous_outcome(self) -> None:
        """Wait for the save in flight; if it failed on any rank, raise on every rank (a collective)."""
        if self._saver is None:
            return
        error: CheckpointError | None = None
        try:
            self._saver.wait()
        except CheckpointError as exc:
            error = exc
        problems = all_gather_objects(str(error) if error is not None else None)
        if error is not None:
            raise error
        raise_for_ranks(problems, "the previous async checkpoint save failed")
