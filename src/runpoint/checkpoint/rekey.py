"""Re-encrypting a directory's checkpoints under a new key, one checkpoint at a time, atomically.

Each checkpoint is decrypted and sealed again file by file, streaming (memory stays at a
few segments), into a staging directory beside it; its manifest, sealed with the new key,
is written last and the staging directory replaces the old checkpoint with the same
rename the manager commits saves with (:mod:`.atomic`). Whenever the process dies, each
checkpoint is wholly under the old key or wholly under the new one: a half-written copy
is a staging leftover, and a checkpoint moved aside but not yet replaced is moved back,
by the next manager start or ``rekey`` (which then carries on where it stopped: the
checkpoints already under the new key are skipped).

A registered model version pins its checkpoint's manifest digest, which a rekey changes:
given ``pins`` (:class:`runpoint.models.repin.RegistryPins`, which the CLI finds for a
directory inside a root), the versions that pin a checkpoint are looked up before it is
touched and re-pinned to the new manifest once the new checkpoint is committed and
verified with the new key. (A crash between that commit and the re-pin leaves the version
pinning the old digest: ``load_model`` then refuses it, saying the manifest changed.)

The old files are fully verified on the way (every tag, the ciphertext hashes, the
manifest's MAC) before the new checkpoint is committed: a corrupt checkpoint is left as
it is and reported. Object stores have no atomic rename of a directory, so rekey works on
local (and network) file systems only.

Example::

    from runpoint.checkpoint.rekey import rekey
    result = rekey("runs/x/checkpoints", old_key=EncryptionKey.from_env("OLD"), new_key=EncryptionKey.from_env("NEW"))
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Protocol

from ..artifacts.manifest import MANIFEST_NAME, FileEntry, Manifest
from ..artifacts.storage import Artifacts, open_artifacts
from ..errors import CheckpointCorruptError, CheckpointError, InvalidArgumentError
from . import atomic
from ._sealed_manifest import check_manifest, seal_manifest
from ._sealing import SEGMENT_BYTES, SealingWriter, open_sealed
from ._streams import HashingReader, HashingSink, stored_size
from .directory import CheckpointDirectory, read_manifest
from .io import _open_file
from .keys import EncryptionKey


class Pins(Protocol):
    """The registered model versions that pin checkpoints (see :class:`runpoint.models.repin.RegistryPins`)."""

    def pinning(self, location: str, manifest: Manifest) -> list[Any]:
        """The versions that pin the checkpoint at ``location`` as its ``manifest`` is now."""

    def repin(self, versions: list[Any], old: Manifest, new: Manifest) -> tuple[list[str], dict[str, str]]:
        """Re-pin ``versions`` from ``old``'s digest to ``new``'s: (refs re-pinned, ref -> why not)."""


@dataclass
class RekeyResult:
    """What :func:`rekey` did with each checkpoint (by directory name)."""

    rekeyed: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # under the new key before this call
    plain: list[str] = field(default_factory=list)  # not encrypted, left so (see ``encrypt_plain``)
    failed: dict[str, str] = field(default_factory=dict)  # name -> why it was left unchanged (or not re-pinned)
    repinned: dict[str, list[str]] = field(default_factory=dict)  # name -> the model versions re-pinned to it

    @property
    def ok(self) -> bool:
        return not self.failed


def rekey(location: str | os.PathLike[str], old_key: EncryptionKey | None, new_key: EncryptionKey, *,
          encrypt_plain: bool = False, storage_options: Mapping[str, Any] | None = None,
          on_done: Callable[[str, str], None] | None = None, pins: Pins | None = None) -> RekeyResult:
    """Re-encrypt every checkpoint in ``location`` (a checkpoints directory) under ``new_key``.

    ``old_key`` opens the checkpoints as they are (None: there are only unencrypted ones
    to encrypt); with ``encrypt_plain`` unencrypted checkpoints are encrypted too.
    ``on_done(name, outcome)`` is told of each checkpoint as it is finished. ``pins``: the
    registry whose model versions are re-pinned to the checkpoints they name (None: none).
    """
    if not isinstance(new_key, EncryptionKey) or not isinstance(old_key, (EncryptionKey, type(None))):
        raise InvalidArgumentError("new_key", "old_key and new_key must be rp.EncryptionKey objects")
    storage = open_artifacts(location, storage_options)
    if not storage.is_local:
        raise InvalidArgumentError(
            "location", f"{storage.display()} is on an object store, which has no atomic rename to replace a "
                        "checkpoint with; copy the checkpoints to a local disk, rekey them there, and copy them back")
    if storage.exists(MANIFEST_NAME):
        raise InvalidArgumentError("location", f"{storage.display()} is one checkpoint; give the directory that holds it")
    directory = CheckpointDirectory.prepare(storage)  # puts back what a killed rekey had moved aside
    result = RekeyResult()
    for name in sorted(directory.broken):
        result.failed[name] = f"{MANIFEST_NAME}: {directory.broken[name]}"
    for info in directory.list():
        try:
            outcome = _rekey_one(storage, info.name, old_key, new_key, encrypt_plain, pins, result)
        except CheckpointError as exc:
            result.failed[info.name] = str(exc)
            outcome = "failed"
        else:
            getattr(result, outcome).append(info.name)
        if on_done is not None:
            on_done(info.name, outcome)
    return result


def _rekey_one(storage: Artifacts, name: str, old_key: EncryptionKey | None, new_key: EncryptionKey,
               encrypt_plain: bool, pins: Pins | None, result: RekeyResult) -> str:
    where = storage.display(name)
    manifest = read_manifest(storage, name)
    if manifest.is_sharded:
        raise CheckpointError(f"{where} is a sharded checkpoint; those are not encrypted", where)
    sealed = manifest.encryption
    if sealed is None and not encrypt_plain:
        return "plain"
    if sealed is not None and sealed.key_id == new_key.key_id:
        check_manifest(manifest, new_key, where)
        return "already"
    if sealed is not None:
        check_manifest(manifest, old_key, where)
    versions = pins.pinning(where, manifest) if pins is not None else []
    staging = atomic.Staging(storage, name)
    try:
        files = {file: _reseal(storage, name, staging.path, file, entry, manifest, old_key, new_key)
                 for file, entry in manifest.files.items()}
        resealed = seal_manifest(replace(manifest, files=files, encryption=None, signed=None), new_key)
        staging.commit(resealed.to_json())
    except OSError as exc:
        staging.abort()
        raise CheckpointError(f"could not rekey {where}: {exc}; it is unchanged", where) from exc
    except BaseException:
        staging.abort()
        raise
    if versions and pins is not None:
        _repin(storage, name, manifest, new_key, versions, pins, result)
    return "rekeyed"


def _repin(storage: Artifacts, name: str, old: Manifest, new_key: EncryptionKey, versions: list[Any], pins: Pins,
           result: RekeyResult) -> None:
    """Re-pin the model versions that named the checkpoint, once its new files verify with the new key."""
    from .io import SafetensorsIO

    new = read_manifest(storage, name)
    problems = SafetensorsIO(encrypt=new_key).verify(storage, name, new)
    refs = ", ".join(version.ref for version in versions)
    if problems:
        result.failed[name] = f"rekeyed, but the new checkpoint does not verify ({problems[0]}): {refs} not re-pinned"
        return
    done, failed = pins.repin(versions, old, new)
    if done:
        result.repinned[name] = done
    if failed:
        result.failed[name] = "rekeyed, but model version(s) not re-pinned: " + "; ".join(failed.values())


def _reseal(storage: Artifacts, name: str, staging: str, file: str, entry: FileEntry, manifest: Manifest,
            old_key: EncryptionKey | None, new_key: EncryptionKey) -> FileEntry:
    """Copy one file into ``staging``, decrypted with the old key and sealed with the new, verifying the old."""
    where = storage.display(name)
    raw = _open_file(storage, name, file, where)
    try:
        size = stored_size(raw)
        if size is not None and size != entry.bytes:
            raise CheckpointCorruptError(where, file, f"{size} bytes, the manifest says {entry.bytes}")
        hashing = HashingReader(raw, entry.bytes)
        plain: Any = hashing
        sink = storage.open_write(staging, file)
        try:
            out = HashingSink(sink)
            writer = SealingWriter(new_key, out, file)
            buffer = memoryview(bytearray(SEGMENT_BYTES))
            if manifest.encryption is not None:
                plain = open_sealed(old_key, hashing, manifest, file, entry)
            while count := plain.readinto(buffer):
                writer.write(buffer[:count])
            while hashing.readinto(buffer):  # bytes beyond the last segment: counted, so refused below
                pass
            if hashing.count != entry.bytes or hashing.hash.hexdigest() != entry.hash:
                raise CheckpointCorruptError(where, file, "content hash or size differs from the manifest")
            writer.close()
            sink.close()
        except ValueError as exc:
            sink.abort()
            raise CheckpointCorruptError(where, file, str(exc)) from None
        except BaseException:
            sink.abort()
            raise
    finally:
        raw.close()
    return FileEntry(bytes=out.count, hash=out.hash.hexdigest(), raw_bytes=entry.raw_bytes, file_id=writer.file_id)
