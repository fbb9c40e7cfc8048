"""Writing one checkpoint: stage its files, build its manifest, commit it atomically."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..artifacts.manifest import CheckpointInfo, Manifest, checkpoint_name
from ..logs.run_log import emit
from . import atomic
from ._checks import save_error, versions
from ._sealed_manifest import seal_manifest
from .save_timing import record_save_seconds

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ..handle import RunHandle
    from .directory import CheckpointDirectory
    from .io import CheckpointIO, Payload
    from .process import CheckpointProcess

logger = logging.getLogger("runpoint")


def write_checkpoint(storage: "Artifacts", directory: "CheckpointDirectory", io: "CheckpointIO",
                     process: "CheckpointProcess", run: "RunHandle | None", step: int, payload: "Payload",
                     keys: dict[str, str], metrics: dict[str, float], rng_names: tuple[str, ...]) -> CheckpointInfo:
    """Write ``payload`` as the checkpoint of ``step``; visible only once its manifest is committed.

    The run's metrics logged so far are flushed before the commit, so a restored run never
    has a checkpoint newer than its metrics. On any error the staging directory is removed
    and the checkpoints saved before are untouched (``CheckpointError`` for an ``OSError``).
    """
    name = checkpoint_name(step)
    started = time.monotonic()
    try:
        staging = atomic.Staging(storage, name)
    except OSError as exc:
        raise save_error(step, exc, storage.display()) from exc
    try:
        files = io.save(storage, staging.path, payload)
        manifest = Manifest(
            step=step, sequence=process.next_sequence(directory), created_at=time.time(), files=files,
            metrics=metrics, keys=keys, rng=rng_names, compression=getattr(io, "compress", None),
            run_id=run.id if run is not None else None, tensors=len(payload.tensors), versions=versions(),
        )
        manifest = seal_manifest(manifest, getattr(io, "key", None))
        _flush(run)
        staging.commit(manifest.to_json())
    except OSError as exc:
        staging.abort()
        raise save_error(step, exc, storage.display()) from exc
    except BaseException:
        staging.abort()
        raise
    info = CheckpointInfo(step=step, path=storage.display(name), created_at=manifest.created_at,
                          bytes=manifest.total_bytes, metrics=metrics, manifest=manifest)
    directory.add(info)
    emit(logger, logging.INFO, "checkpoint.commit", "runpoint: committed checkpoint %s (%d bytes in %.2f s)", info.path,
         info.bytes, time.monotonic() - started, run_id=manifest.run_id, step=step, path=info.path, bytes=info.bytes,
         seconds=round(time.monotonic() - started, 4), files=len(files))
    record_save_seconds(run, step, started, coordinates=process.coordinates)
    return info


def _flush(run: "RunHandle | None") -> None:
    if run is None:
        return
    try:
        run.flush(timeout=60)
    except Exception as exc:  # the checkpoint matters more than the metrics index
        logger.warning("runpoint: could not flush the metrics of run %s before a checkpoint: %s", run.id, exc)
