"""Applying a retention policy to a checkpoint directory after a commit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable, Iterable

from . import atomic
from .policy import RetentionPolicy

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ..handle import RunHandle
    from ._registration import RegistrySync
    from .directory import CheckpointDirectory
    from .io import CheckpointIO

from ..logs.run_log import emit

logger = logging.getLogger("runpoint")


def registered_of(run: "RunHandle | None") -> Callable[[], set[int]] | None:
    """What asks the run's store for the steps its model versions use (None without a run)."""
    if run is None:
        return None
    from ..store.registry import registered_steps

    return lambda: registered_steps(run.store, run.id)


def still_registered(registered: Callable[[], set[int]], step: int) -> Callable[[], bool]:
    """For :func:`atomic.remove`'s ``keep``: is ``step`` a model version's checkpoint now? (unsure: yes)."""

    def keep() -> bool:
        try:
            return step in registered()
        except Exception:  # noqa: BLE001 - the registry cannot say: keep the checkpoint
            return True

    return keep


def apply_retention(storage: "Artifacts", directory: "CheckpointDirectory", retention: RetentionPolicy,
                    protected: Iterable[int], io: "CheckpointIO", registry: "RegistrySync | None",
                    registered: Callable[[], set[int]] | None = None) -> list[int]:
    """Delete what ``retention`` does not keep; never a ``protected`` step (latest, best) or one being read.

    Nor the checkpoint of a registered model version: ``registered()`` names their steps
    (asked before, and again as each checkpoint is locked for deletion); when it cannot
    answer, nothing is deleted this time. Returns the steps deleted. A checkpoint that
    cannot be deleted is logged and kept.
    """
    try:
        checkpoints = directory.refresh()
    except OSError as exc:
        emit(logger, logging.WARNING, "checkpoint.retention_failed", "runpoint: could not list %s for retention: %s",
             storage.display(), exc, path=storage.display(), error=str(exc))
        return []
    try:
        versions = registered() if registered is not None else set()
    except Exception as exc:  # noqa: BLE001 - a store that cannot answer must not cost a registered model
        logger.warning("runpoint: could not read which checkpoints model versions use (%s); retention deletes "
                       "nothing this time", exc)
        return []
    keep = retention.keep(checkpoints) | set(protected) | versions
    deleted = []
    for info in sorted(checkpoints, key=lambda c: c.sequence):
        if info.step in keep:
            continue
        try:
            removed = atomic.remove(storage, info.name, io.remove,
                                    keep=None if registered is None else still_registered(registered, info.step))
        except OSError as exc:
            emit(logger, logging.WARNING, "checkpoint.retention_failed", "runpoint: could not delete checkpoint %s: %s",
                 info.path, exc, path=info.path, step=info.step, error=str(exc), run_id=info.manifest.run_id)
            continue
        if removed:
            directory.discard(info.step)
            deleted.append(info.step)
            emit(logger, logging.INFO, "checkpoint.retention_deleted", "runpoint: retention deleted checkpoint %s",
                 info.path, path=info.path, step=info.step, bytes=info.bytes, run_id=info.manifest.run_id)
            if registry is not None:
                registry.deleted(info.step)
    return deleted
