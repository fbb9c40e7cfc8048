"""Applying a retention policy on demand, outside a training run (``runpoint ckpt gc``).

The same rules as the manager's retention after each save: the policy decides, the
latest and the best checkpoint and those of registered model versions are always kept,
a checkpoint another process is reading is skipped, and the leftovers of interrupted saves are removed.

Example::

    result = apply_retention("runs/x/checkpoints", LatestN(2), monitor="val/loss", dry_run=True)
    print(result.to_delete)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..artifacts.manifest import CheckpointInfo
from ..artifacts.storage import open_artifacts
from . import atomic
from ._retention import still_registered
from .directory import CheckpointDirectory
from .policy import Mode, RetentionPolicy


@dataclass
class RetentionResult:
    kept: list[CheckpointInfo] = field(default_factory=list)
    to_delete: list[CheckpointInfo] = field(default_factory=list)
    deleted: list[CheckpointInfo] = field(default_factory=list)
    skipped: list[CheckpointInfo] = field(default_factory=list)  # being read elsewhere
    leftovers: list[str] = field(default_factory=list)
    unconfirmed: list[CheckpointInfo] = field(default_factory=list)  # the policy drops them, ``only`` does not name them


def apply_retention(
    path: str | os.PathLike[str],
    policy: RetentionPolicy,
    *,
    monitor: str | None = None,
    mode: Mode = "min",
    dry_run: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    on_deleted: Callable[[CheckpointInfo], None] | None = None,
    only: Iterable[CheckpointInfo] | None = None,
    registered: Callable[[], set[int]] | None = None,
) -> RetentionResult:
    """Delete the checkpoints of ``path`` that ``policy`` does not keep (all unless ``dry_run``).

    ``registered()`` names the steps that registered model versions use: always kept (it
    is asked again as each checkpoint is locked for deletion; an error keeps them all).

    ``only`` limits the deletion to these checkpoints (those of a dry run a person
    confirmed): the plan is made again, and a checkpoint it would delete that ``only`` does
    not name (the same step saved the same time) is kept and listed in ``unconfirmed``.
    """
    storage = open_artifacts(path, storage_options)
    directory = CheckpointDirectory(storage)
    checkpoints = directory.refresh()
    keep = policy.keep(checkpoints)
    for protected in (directory.latest(), directory.best(monitor, mode)):
        if protected is not None:
            keep.add(protected.step)
    keep |= registered() if registered is not None else set()
    result = RetentionResult()
    confirmed = None if only is None else {(info.step, info.sequence) for info in only}
    for info in checkpoints:
        if info.step in keep:
            result.kept.append(info)
        elif confirmed is not None and (info.step, info.sequence) not in confirmed:
            result.kept.append(info)
            result.unconfirmed.append(info)
        else:
            result.to_delete.append(info)
    if dry_run:
        return result
    result.leftovers = atomic.cleanup_leftovers(storage)
    for info in sorted(result.to_delete, key=lambda c: c.sequence):
        if atomic.remove(storage, info.name,
                         keep=None if registered is None else still_registered(registered, info.step)):
            result.deleted.append(info)
            if on_deleted is not None:
                on_deleted(info)
        else:
            result.skipped.append(info)
    if result.deleted:
        directory.refresh()
        directory.write_pointers(directory.latest(), directory.best(monitor, mode), with_best=monitor is not None)
    return result
