"""Reading checkpoints outside a training loop: ``load_checkpoint`` and ``verify_checkpoint``.

Both take a checkpoint directory (``.../checkpoints/step-000500``), a directory of
checkpoints (``.../checkpoints``, then ``which`` picks one), a ``latest`` or ``best``
pointer file (``.../checkpoints/latest``: the checkpoint it names), or an fsspec URL of any.

Example::

    state = rp.load_checkpoint("runpoint/digits/abc123/checkpoints", which="best")
    model.load_state_dict(state["model"])
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from ..artifacts.manifest import MANIFEST_NAME, Manifest
from ..artifacts.storage import Artifacts, open_artifacts
from ..errors import CheckpointCorruptError, CheckpointError, CheckpointNotFoundError
from . import _state, atomic
from .directory import BEST_POINTER, LATEST_POINTER, CheckpointDirectory, read_manifest
from .io import STATE_FILE, CheckpointIO, SafetensorsIO

if TYPE_CHECKING:
    from .keys import EncryptionKey


def read_checkpoint(
    storage: Artifacts, name: str, io: CheckpointIO, *, verify: bool = True
) -> tuple[Manifest, dict[str, Any], dict[str, Any]]:
    """(manifest, decoded structure, tensors) of one checkpoint, verified against its manifest."""
    where = storage.display(name)
    with atomic.reading(storage, name) as present:
        if not present:
            raise CheckpointNotFoundError(where)
        manifest = read_manifest(storage, name)
        payload = io.load(storage, name, manifest, verify=verify)
    try:
        document = _state.decode(payload.structure)
    except ValueError as exc:
        raise CheckpointCorruptError(where, STATE_FILE, str(exc)) from None
    try:
        refs = _tensor_refs(document)
    except ValueError as exc:
        raise CheckpointCorruptError(where, STATE_FILE, str(exc)) from None
    missing = [ref.name for ref in refs if ref.name not in payload.tensors]
    if missing:
        raise CheckpointCorruptError(where, STATE_FILE, f"refers to tensors the file lacks: {', '.join(missing[:5])}")
    return manifest, document, payload.tensors


MAX_STATE_DEPTH = 256  # restoring walks the state recursively; a crafted one must not exhaust the stack


def _tensor_refs(value: Any) -> list[_state.TensorRef]:
    """The tensor references in a decoded state; ValueError if it nests deeper than MAX_STATE_DEPTH."""
    found: list[_state.TensorRef] = []
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_STATE_DEPTH:
            raise ValueError(f"the state is nested more than {MAX_STATE_DEPTH} levels deep")
        if isinstance(item, _state.TensorRef):
            found.append(item)
        elif isinstance(item, _state.Stateful):
            stack.append((item.state, depth + 1))
        elif isinstance(item, dict):
            stack.extend((inner, depth + 1) for inner in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((inner, depth + 1) for inner in item)
    return found


def _through_pointer(storage: Artifacts, storage_options: Mapping[str, Any] | None) -> tuple[Artifacts, str] | None:
    """(directory, checkpoint name) when ``storage`` is a ``latest`` or ``best`` pointer file."""
    parent, _, pointer = storage.url.rstrip("/").rpartition("/")
    if pointer not in (LATEST_POINTER, BEST_POINTER):
        return None
    directory = open_artifacts(parent or "/", storage_options)
    target = atomic.read_pointer(directory, pointer)  # None for a directory of that name
    if target is None or not directory.exists(target, MANIFEST_NAME):
        return None
    return directory, target


def locate(
    path: str | os.PathLike[str], which: Any = "latest", storage_options: Mapping[str, Any] | None = None
) -> tuple[Artifacts, str]:
    """The storage and checkpoint name that ``path`` (and ``which``) designate.

    ``path`` itself may be a symbolic link (the caller named it); links below it are refused.
    """
    if isinstance(path, os.PathLike) or "://" not in str(path):
        path = os.path.realpath(os.path.expanduser(os.fspath(path)))
    storage = open_artifacts(path, storage_options)
    if storage.exists(MANIFEST_NAME):
        parent, _, name = storage.url.rstrip("/").rpartition("/")
        return open_artifacts(parent or "/", storage_options), name
    pointed = _through_pointer(storage, storage_options)
    if pointed is not None:
        return pointed
    directory = CheckpointDirectory(storage)
    directory.refresh()
    info = directory.pick(which)
    if info is None:
        raise CheckpointNotFoundError(storage.display())
    return storage, info.name


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    which: Any = "latest",
    map_location: Any = None,
    verify: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    key: "EncryptionKey | None" = None,
) -> dict[str, Any]:
    """A checkpoint's state as plain values: tensors, dicts, lists, numbers.

    What was saved from an object with ``state_dict()`` comes back as that state dict,
    ready for ``load_state_dict``; generator objects come back as new generators. The
    files are verified against the manifest first (``verify=False`` skips the hashes).

    Args:
        path: a checkpoint directory, a directory of checkpoints, a ``latest`` or ``best``
            pointer file in one (``which`` is then not needed), or a URL of any.
        which: with a directory of checkpoints: ``"latest"``, ``"best"`` or a step.
        map_location: device for the tensors (default: where they were saved, if it
            exists here, else the CPU).
        storage_options: passed to fsspec for URLs (credentials, ``endpoint_url``...).
        key: the :class:`~runpoint.EncryptionKey` of an encrypted checkpoint.

    Example::

        state = rp.load_checkpoint("runpoint/digits/abc123/checkpoints/step-000500")
        model.load_state_dict(state["model"])
        print(state["epoch"])
    """
    storage, name = locate(path, which, storage_options)
    with atomic.reading(storage, name) as present:
        manifest = read_manifest(storage, name) if present else None
        if manifest is not None and manifest.is_sharded:  # saved by several ranks: full tensors, one process
            from ._sharded_restore import load_full

            return load_full(storage, name, manifest, map_location=map_location, verify=verify)
    _, document, tensors = read_checkpoint(storage, name, SafetensorsIO(encrypt=key), verify=verify)
    result = _state.materialize(document["state"], tensors, map_location)
    if not isinstance(result, dict):  # pragma: no cover - decode checked it
        raise CheckpointError(f"{storage.display(name)} holds no state", storage.display(name))
    return result


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of re-hashing one checkpoint."""

    path: str
    step: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_checkpoint(
    path: str | os.PathLike[str], *, storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None, key: "EncryptionKey | None" = None,
) -> list[VerifyResult]:
    """Re-hash one checkpoint, or every checkpoint of a directory; one result each.

    Links and non-regular files below ``path`` are reported, never read. With ``timeout``
    (seconds), checking stops when it runs out and the unchecked files are reported as
    such (the dashboard's Verify button uses it).

    An encrypted checkpoint is checked without its key too (sizes, ciphertext hashes, file
    headers); with ``key`` its manifest's MAC is checked and every segment decrypted.

    Example::

        bad = [r for r in rp.checkpoint.verify_checkpoint("runs/x/checkpoints") if not r.ok]
    """
    storage = open_artifacts(path, storage_options)
    io = SafetensorsIO(encrypt=key)
    deadline = None if timeout is None else time.monotonic() + timeout
    if storage.exists(MANIFEST_NAME):
        parent, _, name = storage.url.rstrip("/").rpartition("/")
        return [_verify_one(open_artifacts(parent or "/", storage_options), name, io, deadline)]
    pointed = _through_pointer(storage, storage_options)
    if pointed is not None:
        return [_verify_one(*pointed, io, deadline)]
    directory = CheckpointDirectory(storage)
    checkpoints = directory.refresh()
    results = [_verify_one(storage, info.name, io, deadline) for info in checkpoints]
    for name, reason in directory.broken.items():
        results.append(VerifyResult(storage.display(name), None, [f"{MANIFEST_NAME}: {reason}"]))
    return sorted(results, key=lambda r: (r.step is None, r.step or 0))


def _verify_one(storage: Artifacts, name: str, io: SafetensorsIO, deadline: float | None) -> VerifyResult:
    where = storage.display(name)
    try:
        manifest = read_manifest(storage, name)
    except CheckpointCorruptError as exc:
        return VerifyResult(where, None, [f"{MANIFEST_NAME}: {exc.reason}"])
    with atomic.reading(storage, name) as present:
        if not present:
            return VerifyResult(where, manifest.step, ["removed while being verified"])
        return VerifyResult(where, manifest.step, io.verify(storage, name, manifest, deadline=deadline))
