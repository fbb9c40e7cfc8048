"""Applying a retention policy to a checkpoint directory after a commit."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Iterable

from . import atomic
from .policy import RetentionPolicy

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ._registration import RegistrySync
    from .directory import CheckpointDirectory
    from .io import CheckpointIO

from ..logs.run_log import emit

logger = logging.getLogger("runpoint")


def apply_retention(storage: "Artifacts", directory: "CheckpointDirectory", retention: RetentionPolicy,
                    protected: Iterable[int], io: "CheckpointIO", registry: "RegistrySync | None") -> list[int]:
    """Delete what ``retention`` does not keep; never a ``protected`` step (latest, best) or one being read.

    Returns the steps deleted. A checkpoint that cannot be deleted is logged and kept.
    """
    try:
        checkpoints = directory.refresh()
    except OSError as exc:
        emit(logger, logging.WARNING, "checkpoint.retention_failed", "runpoint: could not list %s for retention: %s",
             storage.display(), exc, path=storage.display(), error=str(exc))
        return []
    keep = retention.keep(checkpoints) | set(protected)
    deleted = []
    for info in sorted(checkpoints, key=lambda c: c.sequence):
        if info.step in keep:
            continue
        try:
            removed = atomic.remove(storage, info.name, io.remove)
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
