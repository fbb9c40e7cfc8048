"""Keeping a run's rows of the checkpoint registry in line with its checkpoint files.

The files are the truth; the registry (``runpoint ckpt ls``, the dashboard) is an
index. Every commit, deletion and change of the best checkpoint is recorded; a failure
to record is a warning, never a failed save, and :meth:`RegistrySync.reconcile` repairs
what a crash between a commit and its registration left behind at the next start.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..artifacts.manifest import CheckpointInfo, Manifest, checkpoint_name
from ..artifacts.storage import Artifacts
from ..store import CheckpointRecord, checkpoint_registry

if TYPE_CHECKING:
    from ..handle import RunHandle

logger = logging.getLogger("runpoint")


def manifest_digest(manifest: Manifest) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(manifest.to_json().encode("utf-8"))


class RegistrySync:
    """Records the checkpoints of ``run`` stored in ``storage``."""

    def __init__(self, run: "RunHandle", storage: Artifacts) -> None:
        self.run = run
        self.storage = storage
        self.registry = checkpoint_registry(run.store)

    def path_of(self, step: int) -> str:
        """The path recorded for a step: relative to the run directory when inside it."""
        path = self.storage.display(checkpoint_name(step))
        if self.storage.is_local:
            try:
                return Path(path).relative_to(self.run.dir).as_posix()
            except ValueError:
                pass
        return path

    def _call(self, method: str, *args: Any) -> None:
        if self.registry is None:
            return
        try:
            getattr(self.registry, method)(*args)
        except Exception as exc:  # the files are the truth; reconcile() catches up
            logger.warning("runpoint: could not update the checkpoint registry: %s", exc)

    def added(self, info: CheckpointInfo, is_best: bool) -> None:
        record = CheckpointRecord(
            run_id=self.run.id, step=info.step, path=self.path_of(info.step), bytes=info.bytes,
            created_at=info.created_at, metrics=dict(info.metrics), is_best=is_best,
            hash=manifest_digest(info.manifest),
        )
        self._call("add_checkpoint", record)

    def best_is(self, step: int | None) -> None:
        self._call("set_best_checkpoint", self.run.id, step)

    def deleted(self, step: int) -> None:
        self._call("mark_checkpoint_deleted", self.run.id, step, time.time())

    def reconcile(self, on_disk: list[CheckpointInfo], best: CheckpointInfo | None) -> None:
        if self.registry is None:
            return
        try:
            records = {r.step: r for r in self.registry.list_checkpoints(self.run.id)}
        except Exception as exc:
            logger.warning("runpoint: could not read the checkpoint registry: %s", exc)
            return
        present = {info.step: info for info in on_disk}
        for step, info in present.items():
            record = records.get(step)
            is_best = best is not None and best.step == step
            if record is None or record.hash != manifest_digest(info.manifest) or record.is_best != is_best:
                self.added(info, is_best)
        for step, record in records.items():
            if step not in present and record.path == self.path_of(step):
                self.deleted(step)
