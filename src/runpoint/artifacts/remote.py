"""Artifacts at any fsspec URL (``s3://``, ``gs://``, ``memory://``...), fsspec imported only here.

Object stores have no atomic rename and no fsync: an upload completes at ``close``, and a
commit is the manifest written last (see :mod:`runpoint.checkpoint.atomic`).
"""

from __future__ import annotations

from typing import Any, BinaryIO, Mapping

from ..errors import RunpointError
from .base import too_long


class RemoteArtifacts:
    """A directory of files behind an fsspec URL."""

    is_local = False

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        try:
            import fsspec
        except ImportError:
            raise RunpointError(f"files at {url} need fsspec (and its backend, e.g. s3fs): pip install 'runpoint[s3]'") from None
        try:
            self._fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        except ImportError as exc:
            raise RunpointError(f"files at {url} need {exc.name}: pip install 'runpoint[s3]'") from None
        self.root = root.rstrip("/")
        self.url = url.rstrip("/")

    def __repr__(self) -> str:
        return f"RemoteArtifacts({self.url!r})"

    def path(self, *parts: str) -> str:
        """The full path of ``parts`` as the file system names it."""
        return "/".join((self.root, *parts)) if parts else self.root

    def display(self, *parts: str) -> str:
        """The URL of ``parts``."""
        return "/".join((self.url, *parts)) if parts else self.url

    def list_names(self) -> list[str]:
        try:
            entries = self._fs.ls(self.root, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted({entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries})

    def exists(self, *parts: str) -> bool:
        return bool(self._fs.exists(self.path(*parts)))

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        path = self.path(*parts)
        if limit is None:
            return bytes(self._fs.cat_file(path))
        with self._fs.open(path, "rb") as handle:
            return too_long(self.display(*parts), bytes(handle.read(limit + 1)), limit)

    def open_read(self, *parts: str) -> BinaryIO:
        return self._fs.open(self.path(*parts), "rb", block_size=16 * 2**20)  # type: ignore[no-any-return]

    def size(self, *parts: str) -> int:
        return int(self._fs.size(self.path(*parts)))

    def list_files(self, *parts: str) -> list[tuple[str, int]]:
        """(path relative to ``parts``, size) of every object below ``parts``, sorted."""
        base = self.path(*parts).rstrip("/")
        try:
            entries = self._fs.find(base, detail=True)
        except FileNotFoundError:
            return []
        prefix = base.lstrip("/") + "/"
        return sorted(
            (name.lstrip("/")[len(prefix):], int(info.get("size") or 0))
            for name, info in entries.items()
            if info.get("type") != "directory" and name.lstrip("/").startswith(prefix)
        )

    @property
    def fs(self) -> Any:
        """The fsspec file system (for what the protocol does not cover, e.g. presigned URLs)."""
        return self._fs

    def makedirs(self, *parts: str) -> None:
        self._fs.makedirs(self.path(*parts), exist_ok=True)

    def open_write(self, *parts: str) -> "_RemoteSink":
        """A new object; the upload completes at ``close``."""
        return _RemoteSink(self._fs.open(self.path(*parts), "wb"))

    def write_small(self, data: bytes | str, *parts: str) -> None:
        """Replace a small object in one PUT."""
        self._fs.pipe_file(self.path(*parts), data.encode() if isinstance(data, str) else data)

    def remove_file(self, *parts: str) -> None:
        try:
            self._fs.rm_file(self.path(*parts))
        except FileNotFoundError:
            pass

    def remove_tree(self, *parts: str) -> None:
        try:
            self._fs.rm(self.path(*parts), recursive=True)
        except FileNotFoundError:
            pass

    def rename(self, source: str, target: str) -> None:
        raise NotImplementedError("object stores have no atomic rename; commit by writing the manifest last")

    def sync_dir(self, *parts: str) -> None:
        """Nothing to do: an object is durable once its upload completed."""

    def sync_root(self) -> None:
        """Nothing to do: see :meth:`sync_dir`."""


class _RemoteSink:
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> None:
        self._handle.write(memoryview(data).cast("B"))

    def close(self) -> None:
        self._handle.close()  # the upload completes here

    def abort(self) -> None:
        try:
            if hasattr(self._handle, "discard"):
                self._handle.discard()  # s3fs: aborts the multipart upload
                self._handle.closed = True  # else garbage collection closes it, which uploads what was written
            else:
                self._handle.close()
        except Exception:
            pass
