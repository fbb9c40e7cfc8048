"""How a checkpoint's bytes move: the :class:`CheckpointIO` protocol and its default.

An IO writes the files of one checkpoint into a directory and reads them back; it knows
nothing of steps, retention or commits (that is :mod:`._atomic` and the manager), the way
Lightning's ``CheckpointIO`` only saves, loads and removes.

The default, :class:`SafetensorsIO`, writes two files:

- ``tensors.safetensors``: every tensor of the state, written from its own memory;
- ``state.msgpack``: the rest of the structure (optimizer param groups, step counters,
  scheduler state, RNG states) with references to the tensors (see :mod:`._state`).

With ``compress="zstd"`` both are zstd frames (``.zst`` suffix). Each file is hashed
(xxh3-128) as its bytes go to storage, so saving never reads anything back, and is
fsynced once when complete. Loading maps a local file copy-on-write and views its pages
as tensors (elsewhere: reads straight into new tensors), hashes the same bytes, and
refuses the checkpoint if a size or hash differs from the manifest's, before any of it
reaches the caller. The counting, hashing and bounding streams are in :mod:`._streams`.

A checkpoint directory may have been crafted, so reading trusts nothing beyond the
manifest's sizes: a file's size is checked (one ``fstat``) before its bytes are used, no
more bytes are read than the manifest lists, a zstd file may not claim more
uncompressed bytes than zstd can produce from its size, and decompression stops at the
uncompressed size the manifest gives.

With a key (``SafetensorsIO(encrypt=key)``, or ``CheckpointManager(..., encrypt=key)``)
each file's bytes, compressed or not, are sealed segment by segment on their way to the
hash (:mod:`._sealing`): the manifest's sizes and hashes are the ciphertext's, so a keyless
``verify`` still checks every byte, and the manifest is authenticated
(:mod:`._sealed_manifest`). Reading checks the key and the manifest's MAC first, then
decrypts each segment, checking its tag, before its bytes go further.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

from ..artifacts.manifest import MANIFEST_NAME, FileEntry, Manifest
from ..artifacts.storage import Artifacts, NotRegularFileError
from ..errors import (
    CheckpointCorruptError,
    CheckpointError,
    CheckpointKeyError,
    InvalidArgumentError,
    RunpointError,
)
from . import _safetensors
from ._content import (  # noqa: F401
    OUT_OF_TIME,
    TENSORS_FILE,
    ZSTD_MAX_RATIO,
    check_content,
    uncompressed_size,
)
from ._sealed_manifest import check_manifest
from ._sealed_pages import decrypt_mapped
from ._sealing import SealingWriter, open_sealed
from ._streams import (
    Bounded,
    CountingWriter,
    HashingReader,
    HashingSink,
    hasher,
    read_all,
    stored_size,
)

if TYPE_CHECKING:
    from .keys import EncryptionKey

STATE_FILE = "state.msgpack"
COMPRESSIONS = ("zstd",)


@dataclass
class Payload:
    """What one checkpoint holds.

    ``tensors`` (by name) and ``structure`` (msgpack, naming the tensors) are the state
    flattened for a file format. ``state`` is the state as the caller gave it (modules,
    optimizers, DTensors...), for an IO that writes structure-aware formats itself, such
    as a sharded writer built on ``torch.distributed.checkpoint``; None when loaded back.
    """

    tensors: dict[str, Any]
    structure: bytes
    state: Mapping[str, Any] | None = None


@runtime_checkable
class CheckpointIO(Protocol):
    """Writes and reads the files of one checkpoint directory."""

    def save(self, storage: Artifacts, directory: str, payload: Payload) -> dict[str, FileEntry]:
        """Write ``payload`` into ``directory``, durable on return; the entries for the manifest."""

    def load(self, storage: Artifacts, directory: str, manifest: Manifest, *, verify: bool = True) -> Payload:
        """Read a checkpoint back; :class:`CheckpointCorruptError` if it does not match ``manifest``."""

    def verify(self, storage: Artifacts, directory: str, manifest: Manifest) -> list[str]:
        """Re-hash the files; one line per problem, [] if the checkpoint is intact."""

    def remove(self, storage: Artifacts, directory: str) -> None:
        """Delete the files of ``directory``."""



def _to_host(tensor: Any) -> Any:
    if tensor.device.type != "cpu":
        tensor = tensor.to("cpu")
    return tensor if tensor.is_contiguous() else tensor.contiguous()


class SafetensorsIO:
    """The default IO: tensors in safetensors, the rest in msgpack; optional zstd.

    Example::

        io = SafetensorsIO(compress="zstd")
        ckpt = rp.CheckpointManager(run, io=io)
    """

    def __init__(self, compress: str | None = None, level: int = 1, encrypt: "EncryptionKey | None" = None) -> None:
        """``level`` 1 (zstd's fastest) gets within a few percent of level 3's ratio on float
        tensors at nearly twice the speed. ``encrypt``: a key to seal the files with."""
        if compress is not None and compress not in COMPRESSIONS:
            raise InvalidArgumentError("compress", f"{compress!r} is not supported; use None or 'zstd'")
        if compress == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError:
                raise RunpointError("compress='zstd' needs zstandard: pip install 'runpoint[zstd]'") from None
        self.compress = compress
        self.level = level
        self.key = _checked_key(encrypt)

    def __repr__(self) -> str:
        return f"SafetensorsIO(compress={self.compress!r}{', encrypted' if self.key is not None else ''})"

    def with_key(self, key: "EncryptionKey | None") -> "SafetensorsIO":
        """The same IO, sealing with ``key`` (None: not encrypting)."""
        return SafetensorsIO(self.compress, self.level, encrypt=key)

    def file_names(self) -> tuple[str, str]:
        suffix = ".zst" if self.compress else ""
        return TENSORS_FILE + suffix, STATE_FILE + suffix

    def save(self, storage: Artifacts, directory: str, payload: Payload) -> dict[str, FileEntry]:
        tensors_name, state_name = self.file_names()
        entries = {
            tensors_name: self._write(
                storage, directory, tensors_name, lambda out: _safetensors.write(out, payload.tensors, to_host=_to_host)
            ),
            state_name: self._write(storage, directory, state_name, lambda out: out.write(payload.structure)),
        }
        return entries

    def _write(self, storage: Artifacts, directory: str, name: str, produce: Any) -> FileEntry:
        sink = storage.open_write(directory, name)
        try:
            hashing = HashingSink(sink)
            sealer = SealingWriter(self.key, hashing, name) if self.key is not None else None
            target: Any = sealer or hashing
            raw_bytes = None
            if self.compress:
                import zstandard

                compressor = zstandard.ZstdCompressor(level=self.level, threads=-1)
                writer = compressor.stream_writer(target,
                                                   closefd=False, write_return_read=True)
                counting = CountingWriter(writer)
                produce(counting)
                writer.flush(zstandard.FLUSH_FRAME)
                writer.close()
                raw_bytes = counting.count
            else:
                produce(target)
            if sealer is not None:
                sealer.close()
            sink.close()
        except BaseException:
            sink.abort()
            raise
        return FileEntry(bytes=hashing.count, hash=hashing.hash.hexdigest(), raw_bytes=raw_bytes,
                         file_id=sealer.file_id if sealer is not None else None)

    def _open(self, storage: Artifacts, directory: str, name: str, manifest: Manifest) -> tuple[Any, Any, HashingReader]:
        """(the raw file, the stream to decode from, the hashing reader between them).

        The file's size and the uncompressed size it claims are checked against the
        manifest before a byte is decoded.
        """
        where = storage.display(directory)
        entry = manifest.files.get(name)
        if entry is None:
            raise CheckpointCorruptError(where, name, "not listed in the manifest")
        uncompressed = uncompressed_size(manifest, name, entry, where)
        raw = _open_file(storage, directory, name, where)
        size = stored_size(raw)
        if size is not None and size != entry.bytes:
            raw.close()
            raise CheckpointCorruptError(where, name, f"{size} bytes, the manifest says {entry.bytes}")
        hashing = HashingReader(raw, entry.bytes)
        plain: Any = hashing
        if manifest.encryption is not None:
            try:
                plain = open_sealed(self.key, hashing, manifest, name, entry)
            except ValueError as exc:
                raw.close()
                raise CheckpointCorruptError(where, name, str(exc)) from None
        if manifest.compression == "zstd":
            import zstandard

            decoder = zstandard.ZstdDecompressor().stream_reader(plain, read_across_frames=True)
            return raw, Bounded(decoder, uncompressed), hashing
        return raw, plain, hashing

    def load(self, storage: Artifacts, directory: str, manifest: Manifest, *, verify: bool = True) -> Payload:
        tensors_name, state_name = _names(manifest)
        where = storage.display(directory)
        check_manifest(manifest, self.key, where)
        if storage.is_local and not manifest.compression:
            tensors = self._map_tensors(storage, directory, tensors_name, manifest, verify, where)
        elif manifest.encryption is not None and not manifest.compression:
            tensors = self._read(storage, directory, tensors_name, manifest, verify, _decrypted_tensors, where)
        else:
            entry = manifest.files.get(tensors_name)
            size = None if entry is None else uncompressed_size(manifest, tensors_name, entry, where)
            tensors = self._read(storage, directory, tensors_name, manifest, verify,
                                 lambda stream: _safetensors.read(stream, size)[0], where)
        structure = self._read(storage, directory, state_name, manifest, verify, read_all, where)
        return Payload(tensors=tensors, structure=structure)

    def _map_tensors(self, storage: Artifacts, directory: str, name: str, manifest: Manifest, verify: bool,
                     where: str) -> dict[str, Any]:
        """Local, uncompressed: map the file copy-on-write, hash the pages, view them as tensors.

        Encrypted: map the file, decrypt it into new pages (hashing it meanwhile), view those."""
        entry = manifest.files.get(name)
        if entry is None:
            raise CheckpointCorruptError(where, name, "not listed in the manifest")
        with _open_file(storage, directory, name, where) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size != entry.bytes:
                raise CheckpointCorruptError(where, name, f"{size} bytes, the manifest says {entry.bytes}")
            if size == 0:
                raise CheckpointCorruptError(where, name, "the file is empty")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ if manifest.encryption else mmap.ACCESS_COPY)
        digest = hasher() if verify else None
        if manifest.encryption is not None:
            mapped = self._decrypt_mapped(mapped, name, entry, manifest, digest, where)
        elif digest is not None:
            digest.update(mapped)
        if digest is not None and digest.hexdigest() != entry.hash:
            mapped.close()
            raise CheckpointCorruptError(where, name, "content hash differs from the manifest")
        try:
            return _safetensors.from_buffer(mapped)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None

    def _decrypt_mapped(self, sealed: mmap.mmap, name: str, entry: FileEntry, manifest: Manifest, digest: Any,
                        where: str) -> mmap.mmap:
        assert self.key is not None and manifest.encryption is not None  # (load checked the key)
        try:
            return decrypt_mapped(self.key, sealed, name, entry.file_id, manifest.encryption.segment_bytes, digest)
        except ValueError as exc:
            raise CheckpointCorruptError(where, name, str(exc)) from None
        finally:
            with contextlib.suppress(BufferError):  # a failed segment's traceback may still view it: freed with it
                sealed.close()

    def _read(self, storage: Artifacts, directory: str, name: str, manifest: Manifest, verify: bool,
              consume: Any, where: str) -> Any:
        raw, stream, hashing = self._open(storage, directory, name, manifest)
        try:
            try:
                value = consume(stream)
                while hashing.read(1 << 20):  # a compressed file: hash any bytes after the frame
                    pass
            except (ValueError, KeyError, TypeError, EOFError, OSError) as exc:
                raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None
            except MemoryError as exc:  # a checkpoint too large for this machine: an older one may fit
                raise CheckpointError(f"cannot read {where}/{name}: not enough memory ({exc})", where) from None
            except Exception as exc:
                if type(exc).__module__.startswith("zstandard"):
                    raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None
                raise
        finally:
            raw.close()
        entry = manifest.files[name]
        if verify:
            if hashing.count != entry.bytes:
                raise CheckpointCorruptError(where, name, f"{hashing.count} bytes, the manifest says {entry.bytes}")
            if hashing.hash.hexdigest() != entry.hash:
                raise CheckpointCorruptError(where, name, "content hash differs from the manifest")
        return value

    def verify(self, storage: Artifacts, directory: str, manifest: Manifest, *, deadline: float | None = None) -> list[str]:
        """One line per problem. ``deadline`` (a ``time.monotonic()`` value) stops a long check
        with a problem saying so."""
        problems: list[str] = []
        where = storage.display(directory)
        if manifest.encryption is not None and self.key is not None:
            try:
                check_manifest(manifest, self.key, where)
            except CheckpointKeyError as exc:
                return [f"{NOT_CHECKED}: encrypted with key id {exc.expected_key_id}, the key given has key id "
                        f"{exc.given_key_id}"]
            except CheckpointCorruptError as exc:
                return [f"{MANIFEST_NAME}: {exc.reason}"]
        for name, entry in manifest.files.items():
            try:
                uncompressed_size(manifest, name, entry, where)
                stream = _open_file(storage, directory, name, where)
            except CheckpointCorruptError as exc:
                problems.append(f"{name}: {exc.reason}")
                continue
            try:
                size = stored_size(stream)
                if size is not None and size != entry.bytes:
                    problems.append(f"{name}: {size} bytes, the manifest says {entry.bytes}")
                    continue
                hashing = HashingReader(stream, entry.bytes)
                problem = check_content(manifest, name, entry, hashing, deadline, self.key)
            finally:
                stream.close()
            if problem == OUT_OF_TIME:
                problems.append(f"{name}: {problem}")
                return problems
            if hashing.count != entry.bytes:
                problems.append(f"{name}: {hashing.count}{'+' if hashing.count > entry.bytes else ''} bytes, "
                                f"the manifest says {entry.bytes}")
            elif hashing.hash.hexdigest() != entry.hash:
                problems.append(f"{name}: content hash differs from the manifest")
            elif problem is not None:
                problems.append(f"{name}: {problem}")
        return problems

    def remove(self, storage: Artifacts, directory: str) -> None:
        storage.remove_tree(directory)


def _decrypted_tensors(stream: Any) -> dict[str, Any]:
    """An encrypted tensors file, decrypted into pages of its own and viewed as tensors.

    The pages are advised as huge pages: faulting in 4 KiB pages one by one cost more than
    the decryption itself (on a VM, 3x), which a plain restore avoids by mapping the file.
    """
    size = stream.plain_bytes
    if size < 8:
        raise ValueError("the file is too short for a safetensors header")
    pages = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(AttributeError, OSError):
        pages.madvise(mmap.MADV_HUGEPAGE)
    if stream.readinto(pages) != size or stream.read(1):
        raise ValueError("the decrypted size differs from the manifest's")
    return _safetensors.from_buffer(pages)


NOT_CHECKED = "not checked"  # a verify problem line that is about the key, not the files


def _checked_key(key: Any) -> "EncryptionKey | None":
    if key is None:
        return None
    from ._sealing import _aesgcm
    from .keys import EncryptionKey

    if not isinstance(key, EncryptionKey):
        raise InvalidArgumentError("encrypt", f"must be an rp.EncryptionKey (from_env, from_file, from_bytes, "
                                              f"from_callable), not {type(key).__qualname__}")
    _aesgcm()  # a missing cryptography package is said now, not at the first save
    return key


def _open_file(storage: Artifacts, directory: str, name: str, where: str) -> Any:
    try:
        return storage.open_read(directory, name)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointCorruptError(where, name, "the file is missing") from None
    except NotRegularFileError as exc:
        raise CheckpointCorruptError(where, name, f"{exc.strerror}, refused") from None


def _names(manifest: Manifest) -> tuple[str, str]:
    suffix = ".zst" if manifest.compression else ""
    return TENSORS_FILE + suffix, STATE_FILE + suffix
