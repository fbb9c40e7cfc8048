"""The Artifacts protocol: the files of a run or a checkpoint directory, wherever they live.

Two implementations: :class:`~runpoint.artifacts.local.LocalArtifacts` (a directory, with
``fsync`` and atomic ``rename``, which the checkpoint commit needs) and
:class:`~runpoint.artifacts.remote.RemoteArtifacts` (any fsspec URL: ``s3://``, ``gs://``,
``memory://``). Paths given to methods are relative to the location, as ``"a", "b.txt"``
parts or ``"a/b.txt"``.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol, runtime_checkable


class FileSink(Protocol):
    """Where a file's bytes go: ``write`` takes any buffer, ``close`` makes the file durable."""

    def write(self, data: Any) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...


@runtime_checkable
class Artifacts(Protocol):
    """One directory of files. ``write_small`` replaces a file as one unit; ``rename`` is the
    atomic commit where the backend has one (``is_local``); elsewhere a manifest written last is."""

    is_local: bool
    root: str
    url: str

    def path(self, *parts: str) -> str: ...

    def display(self, *parts: str) -> str: ...

    def list_names(self) -> list[str]: ...

    def exists(self, *parts: str) -> bool: ...

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes: ...

    def open_read(self, *parts: str) -> BinaryIO: ...

    def size(self, *parts: str) -> int: ...

    def list_files(self, *parts: str) -> list[tuple[str, int]]: ...

    def makedirs(self, *parts: str) -> None: ...

    def open_write(self, *parts: str) -> FileSink: ...

    def write_small(self, data: bytes | str, *parts: str) -> None: ...

    def remove_file(self, *parts: str) -> None: ...

    def remove_tree(self, *parts: str) -> None: ...

    def rename(self, source: str, target: str) -> None: ...

    def sync_dir(self, *parts: str) -> None: ...

    def sync_root(self) -> None: ...


def too_long(display: str, data: bytes, limit: int | None) -> bytes:
    """``data``, or ValueError when a read bounded by ``limit`` got more."""
    if limit is not None and len(data) > limit:
        raise ValueError(f"{display} is longer than {limit} bytes")
    return data
