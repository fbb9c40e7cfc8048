"""Finding the checkpoint to restore: the newest intact one, with a warning for each corrupt one skipped."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..artifacts.manifest import CheckpointInfo, Manifest, parse_step
from ..errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointKeyError,
    CheckpointNotFoundError,
)
from .load import read_checkpoint

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ..handle import RunHandle
    from .directory import CheckpointDirectory
    from .io import CheckpointIO

from ..logs.run_log import emit

logger = logging.getLogger("runpoint")


@dataclass
class Found:
    """A checkpoint read and verified: its info, manifest, decoded document and tensors."""

    info: CheckpointInfo
    manifest: Manifest
    document: dict[str, Any]
    tensors: dict[str, Any]
    skipped: list[str] = field(default_factory=list)  # the corrupt ones passed over, with why


def first_intact(storage: "Artifacts", directory: "CheckpointDirectory", candidates: list[CheckpointInfo],
                 io: "CheckpointIO", *, fall_back: bool,
                 check_sharded: Callable[[CheckpointInfo], list[str]] | None = None) -> Found | None:
    """Read ``candidates`` in order and return the first intact one.

    With ``fall_back`` (``which="latest"``) a corrupt or vanished checkpoint is skipped with a
    warning, and a newer directory whose manifest is unreadable counts as a corrupt latest;
    ``CheckpointError`` when every one was corrupt, None when there was nothing. Without it
    the first candidate's error is raised. A sharded checkpoint is only verified here
    (``check_sharded``: its problems, from every rank); its ``document`` and ``tensors`` are empty.
    """
    where = storage.display().rstrip("/")
    corrupt: list[str] = []
    if fall_back:
        newest = max((info.step for info in candidates), default=-1)
        for name, reason in sorted(directory.broken.items()):
            if (parse_step(name) or 0) > newest:
                corrupt.append(f"{where}/{name}: {reason}")
                emit(logger, logging.WARNING, "checkpoint.fallback", "runpoint: %s/%s: %s; falling back to an older "
                     "checkpoint", where, name, reason, path=f"{where}/{name}", error=reason)
    for info in candidates:
        try:
            if info.manifest.is_sharded:
                manifest, document, tensors = info.manifest, dict[str, Any](), dict[str, Any]()
                problems = (check_sharded or _unchecked)(info)
                if problems:
                    raise CheckpointCorruptError(info.path, "files", "; ".join(problems))
            else:
                manifest, document, tensors = read_checkpoint(storage, info.name, io)
        except CheckpointNotFoundError:
            if not fall_back:
                raise
            continue  # deleted meanwhile by another process's retention
        except CheckpointKeyError:
            raise  # not corruption: an older checkpoint must not be restored because the key is missing
        except CheckpointError as exc:
            if not fall_back:
                raise
            corrupt.append(f"{info.path}: {exc}")
            emit(logger, logging.WARNING, "checkpoint.fallback", "runpoint: %s; falling back to an older checkpoint",
                 exc, path=info.path, step=info.step, error=str(exc))
            continue
        if corrupt:
            emit(logger, logging.WARNING, "checkpoint.fell_back", "runpoint: restored step %d of %s instead of the "
                 "corrupt latest", info.step, where, step=info.step, path=info.path)
        return Found(info, manifest, document, tensors, corrupt)
    if corrupt:
        raise CheckpointError(f"no intact checkpoint in {storage.display()}: " + "; ".join(corrupt), storage.display())
    return None


def _unchecked(info: CheckpointInfo) -> list[str]:
    raise CheckpointError(f"{info.path} is a sharded checkpoint; this reader cannot verify it", info.path)


def rewind_resumed_run(run: "RunHandle", manifest: Manifest) -> None:
    """In a resumed run, restoring its own checkpoint drops the points the stopped attempt
    logged after the checkpoint's step, so the run goes on from there without duplicates."""
    if run.resumed and manifest.run_id == run.id:
        dropped = run.rewind(manifest.step)
        if dropped:
            emit(logger, logging.INFO, "run.rewound", "runpoint: run %s resumes after step %d; dropped %d points "
                 "the stopped attempt logged after it", run.id, manifest.step, dropped, run_id=run.id,
                 step=manifest.step, points=dropped)
