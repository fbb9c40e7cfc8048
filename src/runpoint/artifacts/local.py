"""Artifacts in a local directory, with ``os`` directly: the checkpoint commit needs what
only a local file system gives, ``fsync`` of files and directories and atomic ``rename``.

Reads never follow a symbolic link below the root and accept only regular files
(:func:`open_regular`): a directory someone crafted cannot make a reader return
``/etc/passwd``, read ``/dev/zero`` forever or block on a FIFO.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from .._util.fs import fsync_dir, write_atomic
from .base import too_long


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


class LocalArtifacts:
    """A local directory of files."""

    is_local = True

    def __init__(self, location: str | os.PathLike[str]) -> None:
        self.root = str(Path(location).expanduser().absolute())
        self.url = self.root

    def __repr__(self) -> str:
        return f"LocalArtifacts({self.url!r})"

    def path(self, *parts: str) -> str:
        """The full path of ``parts`` under the root."""
        return "/".join((self.root, *parts)) if parts else self.root

    def display(self, *parts: str) -> str:
        return self.path(*parts)

    def list_names(self) -> list[str]:
        """Names directly under the root (files and directories); [] if it does not exist."""
        try:
            return sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []

    def exists(self, *parts: str) -> bool:
        return os.path.exists(self.path(*parts))

    def read_bytes(self, *parts: str, limit: int | None = None) -> bytes:
        """The file's bytes; with ``limit``, ValueError for a file longer than that."""
        with os.fdopen(open_regular(self.root, *parts), "rb") as handle:
            data = handle.read() if limit is None else handle.read(limit + 1)
        return too_long(self.display(*parts), data, limit)

    def open_read(self, *parts: str) -> BinaryIO:
        """A raw binary stream of a regular file reached without links (see :func:`open_regular`)."""
        return os.fdopen(open_regular(self.root, *parts), "rb", buffering=0)

    def size(self, *parts: str) -> int:
        return os.path.getsize(self.path(*parts))

    def list_files(self, *parts: str) -> list[tuple[str, int]]:
        """(path relative to ``parts``, size) of every regular file below ``parts``, sorted.

        Symbolic links are neither followed nor listed; [] when ``parts`` is not a directory.
        """
        base = self.path(*parts)
        found: list[tuple[str, int]] = []
        for directory, _, names in os.walk(base):  # os.walk does not descend into linked directories
            for name in names:
                info = os.lstat(os.path.join(directory, name))
                if stat.S_ISREG(info.st_mode):
                    found.append((os.path.relpath(os.path.join(directory, name), base).replace(os.sep, "/"), info.st_size))
        return sorted(found)

    def makedirs(self, *parts: str) -> None:
        os.makedirs(self.path(*parts), exist_ok=True)

    def open_write(self, *parts: str) -> "_LocalSink":
        """A new file for writing raw bytes; ``close`` fsyncs it."""
        return _LocalSink(self.path(*parts))

    def write_small(self, data: bytes | str, *parts: str) -> None:
        """Replace a small file as one unit (a pointer, a marker)."""
        write_atomic(self.path(*parts), data)

    def remove_file(self, *parts: str) -> None:
        try:
            os.unlink(self.path(*parts))
        except FileNotFoundError:
            pass

    def remove_tree(self, *parts: str) -> None:
        shutil.rmtree(self.path(*parts), ignore_errors=True)

    def rename(self, source: str, target: str) -> None:
        """Atomic rename within the root."""
        os.rename(self.path(source), self.path(target))

    def sync_dir(self, *parts: str) -> None:
        """Make renames and creations in a directory durable."""
        fsync_dir(self.path(*parts))

    def sync_root(self) -> None:
        self.sync_dir()


class _LocalSink:
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


