"""Checkpoints pinned by their manifest's digest: what a registered model version points at.

A model version records the xxh3-128 of its checkpoint's manifest when it was registered
(the digest the checkpoint registry keeps, :func:`manifest_digest`). Everything here reads a
checkpoint only if its manifest still has that digest, and re-hashes its files against the
manifest (the verified restore path), all while holding the checkpoint against deletion
(:func:`runpoint.checkpoint.atomic.reading`): retention and ``ckpt gc`` skip a checkpoint
being read, so a registration that records the version inside :func:`pinned` never loses
its checkpoint to a retention pass running at the same moment.

Example::

    with pinned("runs/x/checkpoints/step-000400") as checkpoint:   # verified, held
        registry.register_version(..., manifest_hash=checkpoint.digest)
    state = load_pinned("runs/x/checkpoints/step-000400", checkpoint.digest)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, MutableMapping

from ..artifacts.manifest import MANIFEST_NAME, Manifest
from ..artifacts.storage import Artifacts
from ..errors import (
    CheckpointCorruptError,
    CheckpointNotFoundError,
    InvalidArgumentError,
)
from . import _state, atomic
from ._registration import manifest_digest
from ._restore import load_into
from .directory import read_manifest
from .io import SafetensorsIO
from .load import locate, read_checkpoint, verify_checkpoint

if TYPE_CHECKING:
    from .keys import EncryptionKey

__all__ = ["PinnedCheckpoint", "copy_pinned", "load_pinned", "manifest_digest", "pinned", "pinned_weights"]


@dataclass(frozen=True)
class PinnedCheckpoint:
    """A verified checkpoint: where it is (its directory), its step, manifest digest, metrics and size."""

    location: str
    step: int
    digest: str
    created_at: float
    bytes: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None


@contextmanager
def _held(path: str | os.PathLike[str], digest: str | None,
          storage_options: Mapping[str, Any] | None) -> Iterator[tuple[Artifacts, str, Manifest]]:
    """(storage, name, manifest) of the checkpoint at ``path``, held against deletion; its digest checked."""
    storage, name = locate(path, "latest", storage_options)
    where = storage.display(name)
    with atomic.reading(storage, name) as present:
        if not present:
            raise CheckpointNotFoundError(where)
        manifest = read_manifest(storage, name)
        found = manifest_digest(manifest)
        if digest is not None and found != digest:
            raise CheckpointCorruptError(
                where, MANIFEST_NAME, f"it changed since the model version was registered (manifest hash {found}, "
                                      f"registered {digest}): the files are not the registered ones")
        yield storage, name, manifest


@contextmanager
def pinned(path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None
           ) -> Iterator[PinnedCheckpoint]:
    """Verify every file of the checkpoint at ``path`` and hold it against deletion inside the ``with``.

    CheckpointNotFoundError when there is none, CheckpointCorruptError when a file does not
    match the manifest.
    """
    with _held(path, None, storage_options) as (storage, name, manifest):
        where = storage.display(name)
        problems = SafetensorsIO().verify(storage, name, manifest)
        if problems:
            raise CheckpointCorruptError(where, problems[0].split(":")[0], "; ".join(problems[:3]))
        yield PinnedCheckpoint(where, manifest.step, manifest_digest(manifest), manifest.created_at,
                               manifest.total_bytes, dict(manifest.metrics), manifest.run_id)


def load_pinned(
    path: str | os.PathLike[str], digest: str | None, state: MutableMapping[str, Any] | None = None, *,
    strict: bool = True, map_location: Any = None, storage_options: Mapping[str, Any] | None = None,
    key: "EncryptionKey | None" = None,
) -> dict[str, Any] | MutableMapping[str, Any]:
    """The checkpoint's state, if its manifest digest is still ``digest`` and its files match it.

    Without ``state``: the state as plain values (as :func:`~runpoint.load_checkpoint`
    returns it). With ``state`` (``{"model": model, ...}``): loaded into those objects in
    place, as :meth:`CheckpointManager.restore <runpoint.CheckpointManager.restore>` does
    (``strict`` key and shape checks first), and ``state`` is returned. ``key`` decrypts an
    encrypted checkpoint (CheckpointKeyError without it, or with another).
    """
    with _held(path, digest, storage_options) as (storage, name, manifest):
        where = storage.display(name)
        if manifest.is_sharded:
            from ._sharded_restore import load_full

            full = load_full(storage, name, manifest, map_location=map_location)
            return full if state is None else _assign(state, full, strict, where)
        _, document, tensors = read_checkpoint(storage, name, SafetensorsIO(encrypt=key))
        if state is None:
            result: dict[str, Any] = _state.materialize(document["state"], tensors, map_location)
            return result
        load_into(state, document["state"], tensors, strict=strict, map_location=map_location, where=where)
        return state


def _assign(state: MutableMapping[str, Any], full: dict[str, Any], strict: bool, where: str) -> MutableMapping[str, Any]:
    """A sharded checkpoint loaded whole, into ``state``: modules by ``load_state_dict``, the rest replaced."""
    missing = [key for key in state if key not in full]
    if strict and missing:
        raise InvalidArgumentError("state", f"{where} has no {', '.join(map(repr, missing))} (it has "
                                            f"{', '.join(map(repr, full))})")
    for key, value in full.items():
        target = state.get(key)
        if hasattr(target, "load_state_dict"):
            target.load_state_dict(value)  # type: ignore[union-attr]
        elif key in state or not strict:
            state[key] = value
    return state


def pinned_weights(path: str | os.PathLike[str], digest: str | None, key: str | None = None,
                   storage_options: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Manifest]:
    """(the verified weights of the module under ``key``, the manifest), as ``CheckpointManager.export`` reads them."""
    from .export import checkpoint_weights

    with _held(path, digest, storage_options) as (storage, name, _):
        return checkpoint_weights(storage, name, SafetensorsIO(), key)


def copy_pinned(path: str | os.PathLike[str], digest: str | None, dest: str | os.PathLike[str],
                storage_options: Mapping[str, Any] | None = None) -> Path:
    """Copy the checkpoint to the new local directory ``dest`` and verify the copy; returns ``dest``.

    The copy is made beside ``dest`` under a temporary name and renamed into place once every
    file matches the manifest, so ``dest`` is never half a checkpoint.
    """
    target = Path(dest).expanduser().resolve()
    if target.exists():
        raise InvalidArgumentError("dest", f"{target} exists; give a new directory")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with _held(path, digest, storage_options) as (storage, name, manifest):
            for file in [*manifest.files, MANIFEST_NAME]:
                out = scratch / file
                out.parent.mkdir(parents=True, exist_ok=True)
                with storage.open_read(name, *file.split("/")) as source, open(out, "wb") as sink:
                    shutil.copyfileobj(source, sink, 4 * 2**20)
        problems = [problem for result in verify_checkpoint(scratch) for problem in result.problems]
        if problems:
            raise CheckpointCorruptError(target, problems[0].split(":")[0], "the copy does not match: " + problems[0])
        scratch.rename(target)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target
