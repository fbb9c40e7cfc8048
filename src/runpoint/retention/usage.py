"""How many bytes each run holds on disk, by kind: ``runpoint du``.

A run directory's files fall in one of five kinds, by where they lie:

- ``checkpoints``: the files of committed checkpoints (``checkpoints/step-NNNNNN/`` holding a
  ``manifest.json``), the ones a restore can load;
- ``registered``: the part of ``checkpoints`` that registered model versions name: retention
  never deletes them (:func:`runpoint.store.registry.registered_steps`);
- ``media``: ``media/``; ``logs``: ``logs/`` (console logs);
- ``other``: the rest (config, metadata, git diff, checkpoint pointers, leftovers of saves).

Sizes are the sizes of regular files (``lstat``), each inode counted once per run, links not
followed: the number is what deleting the run frees. ``checkpoints`` includes ``registered``.

Example::

    usage = run_usage(run_dir, registered={500})
    print(usage.total, usage.checkpoints, usage.registered)
"""

from __future__ import annotations

import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Collection

from ..artifacts.manifest import MANIFEST_NAME, parse_step

KINDS = ("checkpoints", "media", "logs", "other")


@dataclass
class Usage:
    """Bytes by kind; ``registered`` is the protected part of ``checkpoints``."""

    checkpoints: int = 0
    registered: int = 0
    media: int = 0
    logs: int = 0
    other: int = 0
    files: int = 0

    @property
    def total(self) -> int:
        return self.checkpoints + self.media + self.logs + self.other

    def add(self, other: "Usage") -> None:
        for name in ("checkpoints", "registered", "media", "logs", "other", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "total": self.total}


def _kind(parts: tuple[str, ...], committed: set[str]) -> str:
    if parts[0] == "checkpoints" and len(parts) > 2 and parts[1] in committed:
        return "checkpoints"
    if parts[0] in {"media", "logs"} and len(parts) > 1:
        return parts[0]
    return "other"


def _committed(directory: Path) -> set[str]:
    """Names of the committed checkpoint directories under ``checkpoints/``."""
    try:
        entries = list(os.scandir(directory / "checkpoints"))
    except OSError:
        return set()
    return {entry.name for entry in entries
            if parse_step(entry.name) is not None and (Path(entry.path) / MANIFEST_NAME).is_file()}


def run_usage(directory: str | os.PathLike[str], registered: Collection[int] = ()) -> Usage:
    """The bytes of the run directory ``directory`` by kind; an absent directory holds none."""
    base = Path(directory)
    usage = Usage()
    if not base.is_dir():
        return usage
    committed = _committed(base)
    protected = {name for name in committed if parse_step(name) in registered}
    seen: set[tuple[int, int]] = set()
    for folder, _subdirs, names in os.walk(base):  # os.walk does not follow links to directories
        relative = Path(folder).relative_to(base).parts
        for name in names:
            try:
                info = os.lstat(os.path.join(folder, name))
            except OSError:
                continue  # removed while we walked
            if not stat.S_ISREG(info.st_mode) or (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            parts = (*relative, name)
            kind = _kind(parts, committed)
            setattr(usage, kind, getattr(usage, kind) + info.st_size)
            usage.files += 1
            if kind == "checkpoints" and parts[1] in protected:
                usage.registered += info.st_size
    return usage
