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
reaches the caller.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import CheckpointCorruptError, InvalidArgumentError, RunpointError
from . import _safetensors
from ._storage import FileSink, Storage
from .manifest import FileEntry, Manifest

TENSORS_FILE = "tensors.safetensors"
STATE_FILE = "state.msgpack"
COMPRESSIONS = ("zstd",)


@dataclass
class Payload:
    """What one checkpoint holds: tensors by name, and the msgpack structure."""

    tensors: dict[str, Any]
    structure: bytes


@runtime_checkable
class CheckpointIO(Protocol):
    """Writes and reads the files of one checkpoint directory."""

    def save(self, storage: Storage, directory: str, payload: Payload) -> dict[str, FileEntry]:
        """Write ``payload`` into ``directory``, durable on return; the entries for the manifest."""

    def load(self, storage: Storage, directory: str, manifest: Manifest, *, verify: bool = True) -> Payload:
        """Read a checkpoint back; :class:`CheckpointCorruptError` if it does not match ``manifest``."""

    def verify(self, storage: Storage, directory: str, manifest: Manifest) -> list[str]:
        """Re-hash the files; one line per problem, [] if the checkpoint is intact."""

    def remove(self, storage: Storage, directory: str) -> None:
        """Delete the files of ``directory``."""


def _hasher() -> Any:
    import xxhash

    return xxhash.xxh3_128()


class _HashingSink:
    """Counts and hashes bytes on their way to a :class:`FileSink`."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.hash = _hasher()
        self.count = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        self.sink.write(view)
        self.count += len(view)
        return len(view)


class _CountingWriter:
    def __init__(self, out: Any) -> None:
        self.out = out
        self.count = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.out.write(view)
        self.count += len(view)
        return len(view)


class _HashingReader:
    """Counts and hashes bytes as they are read from storage."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.hash = _hasher()
        self.count = 0

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        count = self.stream.readinto(view) or 0
        self.hash.update(view[:count])
        self.count += count
        return count

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.hash.update(data)
        self.count += len(data)
        return data


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

    def save(self, storage: Storage, directory: str, payload: Payload) -> dict[str, FileEntry]:
        tensors_name, state_name = self.file_names()
        entries = {
            tensors_name: self._write(
                storage, directory, tensors_name, lambda out: _safetensors.write(out, payload.tensors, to_host=_to_host)
            ),
            state_name: self._write(storage, directory, state_name, lambda out: out.write(payload.structure)),
        }
        return entries

    def _write(self, storage: Storage, directory: str, name: str, produce: Any) -> FileEntry:
        sink = storage.open_write(directory, name)
        try:
            hashing = _HashingSink(sink)
            raw_bytes = None
            if self.compress:
                import zstandard

                compressor = zstandard.ZstdCompressor(level=self.level, threads=-1)
                writer = compressor.stream_writer(hashing,  # type: ignore[arg-type]
                                                   closefd=False, write_return_read=True)
                counting = _CountingWriter(writer)
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

    def _open(self, storage: Storage, directory: str, name: str, manifest: Manifest) -> tuple[Any, Any, _HashingReader]:
        """(the raw file, the stream to decode from, the hashing reader between them)."""
        if name not in manifest.files:
            raise CheckpointCorruptError(storage.display(directory), name, "not listed in the manifest")
        try:
            raw = storage.open_read(directory, name)
        except FileNotFoundError:
            raise CheckpointCorruptError(storage.display(directory), name, "the file is missing") from None
        hashing = _HashingReader(raw)
        if manifest.compression == "zstd":
            import zstandard

            decoder = zstandard.ZstdDecompressor().stream_reader(hashing, read_across_frames=True)  # type: ignore[arg-type]
            return raw, decoder, hashing
        return raw, hashing, hashing

    def load(self, storage: Storage, directory: str, manifest: Manifest, *, verify: bool = True) -> Payload:
        tensors_name, state_name = _names(manifest)
        where = storage.display(directory)
        if storage.is_local and not manifest.compression:
            tensors = self._map_tensors(storage, directory, tensors_name, manifest, verify, where)
        else:
            entry = manifest.files.get(tensors_name)
            size = None if entry is None else (entry.raw_bytes if manifest.compression else entry.bytes)
            tensors = self._read(storage, directory, tensors_name, manifest, verify,
                                 lambda stream: _safetensors.read(stream, size)[0], where)
        structure = self._read(storage, directory, state_name, manifest, verify, _read_all, where)
        return Payload(tensors=tensors, structure=structure)

    def _map_tensors(self, storage: Storage, directory: str, name: str, manifest: Manifest, verify: bool,
                     where: str) -> dict[str, Any]:
        """Local, uncompressed: map the file copy-on-write, hash the pages, view them as tensors."""
        entry = manifest.files.get(name)
        if entry is None:
            raise CheckpointCorruptError(where, name, "not listed in the manifest")
        try:
            handle = open(storage.path(directory, name), "rb")
        except FileNotFoundError:
            raise CheckpointCorruptError(where, name, "the file is missing") from None
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if verify and size != entry.bytes:
                raise CheckpointCorruptError(where, name, f"{size} bytes, the manifest says {entry.bytes}")
            if size == 0:
                raise CheckpointCorruptError(where, name, "the file is empty")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY)
        if verify:
            digest = _hasher()
            digest.update(mapped)
            if digest.hexdigest() != entry.hash:
                mapped.close()
                raise CheckpointCorruptError(where, name, "content hash differs from the manifest")
        try:
            return _safetensors.from_buffer(mapped)
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None

    def _read(self, storage: Storage, directory: str, name: str, manifest: Manifest, verify: bool,
              consume: Any, where: str) -> Any:
        raw, stream, hashing = self._open(storage, directory, name, manifest)
        try:
            try:
                value = consume(stream)
                while hashing.read(1 << 20):  # a compressed file: hash any bytes after the frame
                    pass
            except (ValueError, KeyError, TypeError, EOFError) as exc:
                raise CheckpointCorruptError(where, name, f"unreadable: {exc}") from None
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

    def verify(self, storage: Storage, directory: str, manifest: Manifest) -> list[str]:
        problems = []
        for name, entry in manifest.files.items():
            try:
                stream = storage.open_read(directory, name)
            except FileNotFoundError:
                problems.append(f"{name}: missing")
                continue
            hashing = _HashingReader(stream)
            try:
                while hashing.read(16 << 20):
                    pass
            finally:
                stream.close()
            if hashing.count != entry.bytes:
                problems.append(f"{name}: {hashing.count} bytes, the manifest says {entry.bytes}")
            elif hashing.hash.hexdigest() != entry.hash:
                problems.append(f"{name}: content hash differs from the manifest")
        return problems

    def remove(self, storage: Storage, directory: str) -> None:
        storage.remove_tree(directory)


def _names(manifest: Manifest) -> tuple[str, str]:
    suffix = ".zst" if manifest.compression else ""
    return TENSORS_FILE + suffix, STATE_FILE + suffix


def _read_all(stream: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
