"""Where checkpoints live: a local directory, or any fsspec URL (``s3://``, ``gs://``...).

Local directories are handled with ``os`` directly, because the commit protocol needs
what only a local file system gives: ``fsync`` of files and directories, and atomic
``rename``. Everything else goes through fsspec, imported only when a URL is used.

Local reads never follow a symbolic link below the root and accept only regular files
(:func:`open_regular`): a checkpoint directory someone crafted cannot make a reader
return ``/etc/passwd``, read ``/dev/zero`` forever or block on a FIFO.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO, Mapping

from .._fs import fsync_dir, write_atomic
from ..errors import RunpointError


def is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


class NotRegularFileError(OSError):
    """A path under a checkpoint root is a symbolic link, a FIFO, a device or a directory."""


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | _CLOEXEC
# O_NONBLOCK: opening a FIFO does not wait for a writer (it is then refused by fstat)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | _CLOEXEC


def _refuse_link(dir_fd: int, part: str, path: str) -> None:
    try:
        mode = os.lstat(part, dir_fd=dir_fd).st_mode
    except OSError:
        return
    if stat.S_ISLNK(mode):
        raise NotRegularFileError(errno.ELOOP, "a symbolic link (not followed)", path)


def open_regular(root: str, *parts: str) -> int:
    """A read-only descriptor of the regular file ``root/parts...``, following no link below ``root``.

    Raises FileNotFoundError / NotADirectoryError as ``open`` would, and
    :class:`NotRegularFileError` for a symbolic link or anything but a regular file.
    """
    names = [name for part in parts for name in part.split("/") if name]
    path = "/".join((root, *names))
    if not names or any(name == ".." for name in names):
        raise NotRegularFileError(errno.EINVAL, "not a file inside the checkpoint root", path)
    dir_fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _CLOEXEC)
    try:
        for name in names[:-1]:
            try:
                inner = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                    _refuse_link(dir_fd, name, path)
                raise
            os.close(dir_fd)
            dir_fd = inner
        try:
            fd = os.open(names[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise NotRegularFileError(errno.ELOOP, "a symbolic link (not followed)", path) from None
            raise
    finally:
        os.close(dir_fd)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotRegularFileError(errno.EINVAL, kind, path)
    return fd


class Storage:
    """One directory of checkpoints. Paths given to methods are relative to it."""

    def __init__(self, location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None) -> None:
        text = os.fspath(location)
        if text.startswith("file://"):
            text = text[len("file://"):]
        self.is_local = not is_url(text)
        self._fs: Any = None
        if self.is_local:
            self.root = str(Path(text).expanduser().absolute())
            self.url = self.root
        else:
            try:
                import fsspec
            except ImportError:
                raise RunpointError(
                    f"checkpoints at {text} need fsspec (and its backend, e.g. s3fs): pip install 'runpoint[s3]'"
                ) from None
            options = dict(storage_options or {})
            try:
                self._fs, root = fsspec.core.url_to_fs(text, **options)
            except ImportError as exc:
                raise RunpointError(f"checkpoints at {text} need {exc.name}: pip install 'runpoint[s3]'") from None
            self.root = root.rstrip("/")
            self.url = text.rstrip("/")

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # -- paths -----------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """The full path (as the file system names it) of ``parts`` under the root."""
        return "/".join((self.root, *parts)) if parts else self.root

    def display(self, *parts: str) -> str:
        """The path as a user would write it: a local path, or the URL."""
        return "/".join((self.url, *parts)) if parts else self.url

    # -- reading ---------------------------------------------------------------------

    def list_names(self) -> list[str]:
        """Names directly under the root (files and directories); [] if it does not exist."""
        if self.is_local:
            try:
                return sorted(os.listdir(self.root))
            except FileNotFoundError:
                return []
        try:
            entries = self._fs.ls(self.root, detail=False, refresh=True)
        except FileNotFoundError:
            return []
        return sorted({entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries})

    def exists(self, *parts: str) -> bool:
        if self.is_local:
            return os.path.exists(self.path(*parts))
        return bool(self._fs.exists(self.path(*parts)))

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        """The file's bytes; with ``limit``, ValueError for a file longer than that."""
        if self.is_local:
            with os.fdopen(open_regular(self.root, *parts), "rb") as handle:
                data = handle.read() if limit is None else handle.read(limit + 1)
        else:
            path = self.path(*parts)
            if limit is None:
                data = bytes(self._fs.cat_file(path))
            else:
                with self._fs.open(path, "rb") as handle:
                    data = bytes(handle.read(limit + 1))
        if limit is not None and len(data) > limit:
            raise ValueError(f"{self.display(*parts)} is longer than {limit} bytes")
        return data

    def open_read(self, *parts: str) -> BinaryIO:
        """A raw binary stream; local files are regular files reached without links (see :func:`open_regular`)."""
        if self.is_local:
            return os.fdopen(open_regular(self.root, *parts), "rb", buffering=0)
        return self._fs.open(self.path(*parts), "rb", block_size=16 * 2**20)

    def size(self, *parts: str) -> int:
        if self.is_local:
            return os.path.getsize(self.path(*parts))
        return int(self._fs.size(self.path(*parts)))

    # -- writing ---------------------------------------------------------------------

    def makedirs(self, *parts: str) -> None:
        if self.is_local:
            os.makedirs(self.path(*parts), exist_ok=True)
        else:
            self._fs.makedirs(self.path(*parts), exist_ok=True)

    def open_write(self, *parts: str) -> "FileSink":
        """A new file for writing raw bytes; :meth:`FileSink.close` makes it durable."""
        if self.is_local:
            return _LocalSink(self.path(*parts))
        return _RemoteSink(self._fs.open(self.path(*parts), "wb"))

    def write_small(self, data: bytes | str, *parts: str) -> None:
        """Replace a small file as one unit (a pointer, a marker)."""
        if self.is_local:
            write_atomic(self.path(*parts), data)
        else:
            self._fs.pipe_file(self.path(*parts), data.encode() if isinstance(data, str) else data)

    def remove_file(self, *parts: str) -> None:
        try:
            if self.is_local:
                os.unlink(self.path(*parts))
            else:
                self._fs.rm_file(self.path(*parts))
        except FileNotFoundError:
            pass

    def remove_tree(self, *parts: str) -> None:
        if self.is_local:
            shutil.rmtree(self.path(*parts), ignore_errors=True)
            return
        try:
            self._fs.rm(self.path(*parts), recursive=True)
        except FileNotFoundError:
            pass

    def rename(self, source: str, target: str) -> None:
        """Atomic rename within the root (local only)."""
        os.rename(self.path(source), self.path(target))

    def sync_dir(self, *parts: str) -> None:
        """Make renames and creations in a directory durable (local only)."""
        if self.is_local:
            fsync_dir(self.path(*parts))

    def sync_root(self) -> None:
        self.sync_dir()


class FileSink:
    """Where a data file's bytes go. ``write`` takes any buffer, ``close`` syncs."""

    def write(self, data: Any) -> None:  # pragma: no cover - protocol
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - protocol
        raise NotImplementedError

    def abort(self) -> None:  # pragma: no cover - protocol
        raise NotImplementedError


class _LocalSink(FileSink):
    """Unbuffered writes straight from the caller's memory; one fsync at close."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)

    def write(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        written = 0
        while written < len(view):
            count = os.write(self._fd, view[written:written + (1 << 30)])
            if count <= 0:  # pragma: no cover - the kernel reports errors as exceptions
                raise OSError(errno.EIO, "short write", self.path)
            written += count

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _RemoteSink(FileSink):
    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def write(self, data: Any) -> None:
        self._handle.write(memoryview(data).cast("B"))

    def close(self) -> None:
        self._handle.close()  # the upload completes here

    def abort(self) -> None:
        try:
            self._handle.discard() if hasattr(self._handle, "discard") else self._handle.close()
        except Exception:
            pass
