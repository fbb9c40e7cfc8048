"""The streams a checkpoint's bytes pass through on their way to and from storage:
counting and hashing (xxh3-128) them as they go, so saving never reads a file back,
and bounding what a crafted file can make a reader consume.

Per chunk, a wrapper does at most a ``memoryview`` cast, a hash update and a count: they
sit on the path of every byte saved and loaded.
"""

from __future__ import annotations

import os
from typing import Any

from ..artifacts.storage import FileSink


def hasher() -> Any:
    """A new xxh3-128 hash, the hash the manifest records for every file."""
    import xxhash

    return xxhash.xxh3_128()


class HashingSink:
    """Counts and hashes bytes on their way to a :class:`FileSink`."""

    def __init__(self, sink: FileSink) -> None:
        self.sink = sink
        self.hash = hasher()
        self.count = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        self.sink.write(view)
        self.count += len(view)
        return len(view)


class CountingWriter:
    """Counts the bytes written to ``out`` (the uncompressed size of a compressed file)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.count = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.out.write(view)
        self.count += len(view)
        return len(view)


class HashingReader:
    """Counts and hashes bytes as they are read from storage, up to ``limit`` + 1 of them.

    One byte past the manifest's size is enough to know the file is too long; reading
    stops there, so a file that never ends (a device, a growing file) is not read on.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.hash = hasher()
        self.count = 0
        self.limit = limit + 1

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[:max(0, self.limit - self.count)]
        if not len(view):
            return 0
        count = self.stream.readinto(view) or 0
        self.hash.update(view[:count])
        self.count += count
        return count

    def read(self, size: int = -1) -> bytes:
        left = max(0, self.limit - self.count)
        data = self.stream.read(left if size < 0 else min(size, left)) if left else b""
        self.hash.update(data)
        self.count += len(data)
        return data


class Bounded:
    """Decompressed bytes, refused (ValueError) past the uncompressed size the manifest gives."""

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.left = limit
        self.limit = limit

    def _at_end(self) -> None:
        if self.stream.read(1):
            raise ValueError(f"decompresses to more than the {self.limit} bytes the manifest says")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not self.left:
            self._at_end()
            return 0
        count = self.stream.readinto(view[:self.left]) or 0
        self.left -= count
        return count

    def read(self, size: int = -1) -> bytes:
        if not self.left:
            self._at_end()
            return b""
        data = self.stream.read(self.left if size < 0 else min(size, self.left))
        self.left -= len(data)
        return data


def stored_size(raw: Any) -> int | None:
    """The size of an open file: ``fstat`` for a local one, what fsspec knows for a remote one."""
    try:
        return os.fstat(raw.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        size = getattr(raw, "size", None)
        return size if isinstance(size, int) else None


def read_all(stream: Any) -> bytes:
    """Every byte ``stream`` gives, read in 1 MiB chunks."""
    chunks: list[bytes] = []
    while True:
        chunk = stream.read(1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
