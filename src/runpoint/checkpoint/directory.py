"""The committed checkpoints of one directory, and which is the latest and the best.

A checkpoint counts once its ``step-NNNNNN/manifest.json`` exists (see :mod:`._atomic`).
Manifests are read once and cached; :meth:`CheckpointDirectory.refresh` lists the
directory again to notice checkpoints added or removed by another process.

The latest checkpoint is the one saved last (the highest manifest ``sequence``), which
is the highest step except after a restore of an older one. The best is the one with the
best monitored metric, ties going to the earlier save. The ``latest`` and ``best``
pointer files mirror them for people and tools (``cat checkpoints/latest``); the
manifests stay the truth, so a pointer left stale by a crash misleads no one.
"""

from __future__ import annotations

import builtins
import logging
import threading
from typing import Any

from ..artifacts.manifest import (
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
    CheckpointInfo,
    Manifest,
    parse_step,
)
from ..artifacts.storage import Artifacts, NotRegularFileError
from ..errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    InvalidArgumentError,
)
from . import atomic
from .policy import Mode, ranked

logger = logging.getLogger("runpoint")

LATEST_POINTER = "latest"
BEST_POINTER = "best"


def read_manifest(storage: Artifacts, name: str) -> Manifest:
    """The manifest of checkpoint ``name``; CheckpointNotFoundError / CheckpointCorruptError."""
    try:
        text = storage.read_bytes(name, MANIFEST_NAME, limit=MAX_MANIFEST_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointNotFoundError(storage.display(name), parse_step(name)) from None
    except NotRegularFileError as exc:
        raise CheckpointCorruptError(storage.display(name), MANIFEST_NAME, f"{exc.strerror}, refused") from None
    except ValueError:
        raise CheckpointCorruptError(storage.display(name), MANIFEST_NAME,
                                     f"larger than {MAX_MANIFEST_BYTES} bytes, refused") from None
    return Manifest.from_json(text, storage.display(name, MANIFEST_NAME))


def info_of(storage: Artifacts, name: str, manifest: Manifest) -> CheckpointInfo:
    return CheckpointInfo(
        step=manifest.step, path=storage.display(name), created_at=manifest.created_at,
        bytes=manifest.total_bytes, metrics=dict(manifest.metrics), manifest=manifest,
    )


class CheckpointDirectory:
    """The index of one checkpoint directory, safe to use from several threads."""

    def __init__(self, storage: Artifacts) -> None:
        self.storage = storage
        self._known: dict[str, CheckpointInfo] = {}
        self.broken: dict[str, str] = {}  # name -> why its manifest could not be read
        self._lock = threading.Lock()

    @classmethod
    def prepare(cls, storage: Artifacts, *, tidy: bool = True) -> "CheckpointDirectory":
        """Create the directory if needed, remove leftovers of interrupted saves (``tidy``), list it."""
        try:
            storage.makedirs()
            removed = atomic.cleanup_leftovers(storage) if tidy else []
        except OSError as exc:
            raise CheckpointError(f"cannot use {storage.display()} for checkpoints: {exc}", storage.display()) from exc
        if removed:
            logger.info("runpoint: removed %d leftover(s) of interrupted saves in %s", len(removed), storage.display())
        directory = cls(storage)
        directory.refresh()
        return directory

    def refresh(self) -> builtins.list[CheckpointInfo]:
        """List the directory again; returns the committed checkpoints by step."""
        names = [name for name in self.storage.list_names() if parse_step(name) is not None]
        present = set(names)
        with self._lock:
            known = dict(self._known)
        found: dict[str, CheckpointInfo] = {}
        broken: dict[str, str] = {}
        for name in names:
            if name in known:
                found[name] = known[name]
                continue
            try:
                manifest = read_manifest(self.storage, name)
            except CheckpointNotFoundError:
                continue  # no manifest: not committed (a remote save in progress, or a leftover)
            except CheckpointCorruptError as exc:
                broken[name] = exc.reason
                continue
            if manifest.step != parse_step(name):
                broken[name] = f"its manifest says step {manifest.step}"
                continue
            found[name] = info_of(self.storage, name, manifest)
        with self._lock:
            self._known = {name: info for name, info in found.items() if name in present}
            self.broken = broken
            return sorted(self._known.values(), key=lambda c: c.step)

    def list(self) -> list[CheckpointInfo]:
        with self._lock:
            return sorted(self._known.values(), key=lambda c: c.step)

    def add(self, info: CheckpointInfo) -> None:
        with self._lock:
            self._known[info.name] = info
            self.broken.pop(info.name, None)

    def discard(self, step: int) -> None:
        with self._lock:
            self._known.pop(f"step-{step:06d}", None)

    def get(self, step: int) -> CheckpointInfo | None:
        with self._lock:
            return next((c for c in self._known.values() if c.step == step), None)

    def next_sequence(self) -> int:
        with self._lock:
            return max((c.sequence for c in self._known.values()), default=0) + 1

    def by_recency(self) -> builtins.list[CheckpointInfo]:
        """Newest save first."""
        with self._lock:
            return sorted(self._known.values(), key=lambda c: c.sequence, reverse=True)

    def latest(self) -> CheckpointInfo | None:
        newest = self.by_recency()
        return newest[0] if newest else None

    def best(self, monitor: str | None, mode: Mode) -> CheckpointInfo | None:
        """The best by ``monitor``; without one, what the ``best`` pointer names."""
        if monitor is None:
            target = atomic.read_pointer(self.storage, BEST_POINTER)
            with self._lock:
                return self._known.get(target) if target else None
        order = ranked(self.list(), monitor, mode)
        return order[0] if order else None

    def candidates(self, which: Any, monitor: str | None, mode: Mode) -> builtins.list[CheckpointInfo]:
        """What ``restore(which=...)`` tries, in order: every checkpoint newest first for
        ``"latest"``, else the one ``which`` picks (none if it does not exist)."""
        self.refresh()
        if which == "latest":
            return self.by_recency()
        if which == "best" and monitor is None:
            raise InvalidArgumentError("which", "'best' needs a manager with monitor=")
        picked = self.pick(which, monitor, mode)
        return [picked] if picked is not None else []

    def pick(self, which: Any, monitor: str | None = None, mode: Mode = "min") -> CheckpointInfo | None:
        """``"latest"``, ``"best"`` or a step; None when there is nothing of that kind."""
        if which == "latest":
            return self.latest()
        if which == "best":
            return self.best(monitor, mode)
        if isinstance(which, bool) or not isinstance(which, int):
            raise InvalidArgumentError("which", f"must be 'latest', 'best' or a step, got {which!r}")
        found = self.get(which)
        if found is None:
            raise CheckpointNotFoundError(self.storage.display(), which)
        return found

    def write_pointers(self, latest: CheckpointInfo | None, best: CheckpointInfo | None, with_best: bool,
                       only_if_stale: bool = False) -> None:
        """Point ``latest`` and (when a metric is monitored) ``best`` at their checkpoints.

        ``only_if_stale`` reads them first and writes only what differs (a crash between a
        commit and its pointer update leaves a stale pointer; the next start repairs it).
        """
        wanted = [(LATEST_POINTER, latest)] + ([(BEST_POINTER, best)] if with_best else [])
        try:
            for pointer, info in wanted:
                target = info.name if info else None
                if only_if_stale and atomic.read_pointer(self.storage, pointer) == target:
                    continue
                atomic.write_pointer(self.storage, pointer, target)
        except OSError as exc:  # the manifests are the truth; a stale pointer only misleads `cat`
            logger.warning("runpoint: could not update the checkpoint pointers in %s: %s", self.storage.display(), exc)
