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
"""

from __future__ import annotations

import mmap
import os
import time
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

from ..artifacts.manifest import FileEntry, Manifest
from ..artifacts.storage import Artifacts, NotRegularFileError
from ..errors import (
    CheckpointCorruptError,
    CheckpointError,
    InvalidArgumentError,
    RunpointError,
)
from . import _safetensors
from ._streams import (
    Bounded,
    CountingWriter,
    HashingReader,
    HashingSink,
    hasher,
    read_all,
    stored_size,
)

TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.msgpack"
COMPRESSIONS = ("zstd",)
# zstd's densest block is RLE: 4 bytes for 128 KiB, so no frame inflates more than this
ZSTD_MAX_RATIO = 32768


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

    def __init__(self, compress: str | None = None, level: int = 1) -> None:
        """``level`` 1 (zstd's fastest) gets within a few percent of level 3's ratio on float
        tensors at nearly twice the speed."""
        if compress is not None and compress not in COMPRESSIONS:
            raise InvalidArgumentError("compress", f"{compress!r} is not supported; use None or 'zstd'")
        if compress == "zstd":
            try:
                import zstandard  # noqa: F401
            except ImportError:
                raise RunpointError("compress='zstd' needs zstandard: pip install 'runpoint[zstd]'") from None
        self.compress = compress
        self.level = level

    def __repr__(self) -> str:
        return f"SafetensorsIO(compress={self.compress!r})"

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
            raw_bytes = None
            if self.compress:
                import zstandard

                compressor = zstandard.ZstdCompressor(level=self.level, threads=-1)
                writer = compressor.stream_writer(hashing,  # type: ignore[arg-type]
                                                   closefd=False, write_return_read=True)
                counting = CountingWriter(writer)
                produce(counting)
                writer.flush(zstandard.FLUSH_FRAME)
                writer.close()
                raw_bytes = counting.count
            else:
                produce(hashing)
            sink.close()
        except BaseException:
            sink.abort()
            raise
        return FileEntry(bytes=hashing.count, hash=hashing.hash.hexdigest(), raw_bytes=raw_bytes)

    def _open(self, storage: Artifacts, directory: str, name: str, manifest: Manifest) -> tuple[Any, Any, HashingReader]:
        """(the raw file, the stream to decode from, the hashing reader between them).

        The file's size and the uncompressed size it claims are checked against the
        manifest before a byte is decoded.
        """
        where = storage.display(directory)
        entry = manifest.files.get(name)
        if entry is None:
            raise CheckpointCorruptError(where, name, "not listed in the manifest")
        uncompressed = _uncompressed_size(manifest, name, entry, where)
        raw = _open_file(storage, directory, name, where)
        size = stored_size(raw)
        if size is not None and size != entry.bytes:
            raw.close()
            raise CheckpointCorruptError(where, name, f"{size} bytes, the manifest says {entry.bytes}")
        hashing = HashingReader(raw, entry.bytes)
        if manifest.compression == "zstd":
            import zstandard

            decoder = zstandard.ZstdDecompressor().stream_reader(hashing, read_across_frames=True)  # type: ignore[arg-type]
            return raw, Bounded(decoder, uncompressed), hashing
        return raw, hashing, hashing

    def load(self, storage: Artifacts, directory: str, manifest: Manifest, *, verify: bool = True) -> Payload:
        tensors_name, state_name = _names(manifest)
        where = storage.display(directory)
        if storage.is_local and not manifest.compression:
            tensors = self._map_tensors(storage, directory, tensors_name, manifest, verify, where)
        else:
            entry = manifest.files.get(tensors_name)
            size = None if entry is None else (entry.raw_bytes if manifest.compression else entry.bytes)
            tensors = self._read(storage, directory, tensors_name, manifest, verify,
                                 lambda stream: _safetensors.read(stream, size)[0], where)
        structure = self._read(storage, directory, state_name, manifest, verify, read_all, where)
        return Payload(tensors=tensors, structure=structure)

    def _map_tensors(self, storage: Artifacts, directory: str, name: str, manifest: Manifest, verify: bool,
                     where: str) -> dict[str, Any]:
        """Local, uncompressed: map the file copy-on-write, hash the pages, view them as tensors."""
        entry = manifest.files.get(name)
        if entry is None:
            raise CheckpointCorruptError(where, name, "not listed in the manifest")
        with _open_file(storage, directory, name, where) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size != entry.bytes:
                raise CheckpointCorruptError(where, name, f"{size} bytes, the manifest says {entry.bytes}")
            if size == 0:
                raise CheckpointCorruptError(where, name, "the file is empty")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        if verify:
            digest = hasher()
            digest.update(mapped)
            if digest.hexdigest() != entry.hash:
                mapped.close()
                raise CheckpointCorruptError(where, name, "content hash differs from the manifest")
        try:
            return _safetensors.from_buffer(mapped)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None

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
        problems = []
        where = storage.display(directory)
        for name, entry in manifest.files.items():
            try:
                _uncompressed_size(manifest, name, entry, where)
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
                problem = _check_content(manifest, name, entry, hashing, deadline)
            finally:
                stream.close()
            if problem == _OUT_OF_TIME:
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


_OUT_OF_TIME = "not verified: the check ran out of time"


def _check_content(manifest: Manifest, name: str, entry: FileEntry, hashing: HashingReader,
                   deadline: float | None) -> str | None:
    """Read a file through ``hashing`` to its end; what is wrong with its content, or None.

    Beyond the hash: a compressed file must inflate to exactly the size the manifest says
    (never further), and a tensors file must start with a readable safetensors header.
    """
    decoded: Any = hashing
    bounded = None
    try:
        if manifest.compression == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(hashing, read_across_frames=True)  # type: ignore[arg-type]
            decoded = bounded = Bounded(reader, _uncompressed_size(manifest, name, entry, ""))
        if name.rsplit("/", 1)[-1].startswith(TENSORS_FILE):
            _safetensors.check_header(decoded, entry.raw_bytes if bounded is not None else entry.bytes)  # type: ignore[arg-type]
        if bounded is not None:
            while decoded.read(16 << 20):
                if deadline is not None and time.monotonic() > deadline:
                    return _OUT_OF_TIME
        buffer = bytearray(8 << 20)  # one buffer, refilled: 2-3x faster than a new bytes object a read
        while hashing.readinto(buffer):  # (after a compressed file: the bytes after its last frame)
            if deadline is not None and time.monotonic() > deadline:
                return _OUT_OF_TIME
    except (ValueError, OSError) as exc:
        return f"unreadable: {exc}"
    except Exception as exc:
        if type(exc).__module__.startswith("zstandard"):
            return f"unreadable: {exc}"
        raise
    if bounded is not None and bounded.left:
        return f"decompresses to {bounded.limit - bounded.left} bytes, the manifest says {bounded.limit}"
    return None


def _open_file(storage: Artifacts, directory: str, name: str, where: str) -> Any:
    try:
        return storage.open_read(directory, name)
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointCorruptError(where, name, "the file is missing") from None
    except NotRegularFileError as exc:
        raise CheckpointCorruptError(where, name, f"{exc.strerror}, refused") from None


def _uncompressed_size(manifest: Manifest, name: str, entry: FileEntry, where: str) -> int:
    """The size the file's bytes decode to; CheckpointCorruptError if the manifest's claim is impossible."""
    if manifest.compression is None:
        return entry.bytes
    if manifest.compression != "zstd":
        raise CheckpointCorruptError(where, name, f"unknown compression {manifest.compression!r}")
    if entry.raw_bytes is None:
        raise CheckpointCorruptError(where, name, "compressed, but the manifest gives no uncompressed size")
    if entry.raw_bytes > entry.bytes * ZSTD_MAX_RATIO:
        raise CheckpointCorruptError(where, name, f"the manifest says {entry.raw_bytes} bytes uncompressed, "
                                                  f"more than zstd can inflate {entry.bytes} bytes to")
    return entry.raw_bytes


def _names(manifest: Manifest) -> tuple[str, str]:
    suffix = ".zst" if manifest.compression else ""
    return TENSORS_FILE + suffix, STATE_FILE + suffix
