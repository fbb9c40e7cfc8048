"""Small file helpers: atomic replacement of whole files, the one way runpoint does it.

A file written through :func:`atomic_path` (or :func:`write_atomic`, for bytes in hand) is
either the old version or the new one after a crash at any instant: the bytes go to a
unique temporary name in the same directory, are fsynced, renamed over the target, and
the directory is fsynced so the rename survives a power loss too. On any error the
temporary file is removed and the target is untouched.

(Checkpoints have their own commit, a directory renamed into place with its manifest
written last, in :mod:`runpoint.checkpoint.atomic`; object stores get whole-object PUTs
through :mod:`runpoint.artifacts`.)
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, durable: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on a clean exit it replaces ``path`` atomically.

    ``durable`` fsyncs the file and its directory (skip it only for files that mirror
    something durable elsewhere). The temporary name is ``.<name>.<pid>-<random>.tmp``, which
    readers that list a directory skip.

    Example::

        with atomic_path("plot.png") as tmp:
            figure.savefig(tmp)
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
        if durable:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # name the file, not just "No space left"
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    if durable:
        fsync_dir(target.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path, durable=durable) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
        os.fchmod(fd, mode)  # the mode asked for, whatever the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)


def require_parent_dir(path: str | os.PathLike[str], argument: str = "out") -> None:
    """Raise InvalidArgumentError unless the directory ``path`` goes into exists.

    Names the real obstacle: the highest missing directory, or a file where a directory
    should be.
    """
    from ..errors import InvalidArgumentError

    parent = Path(path).parent
    if parent.is_dir():
        return
    missing = parent
    for above in (parent, *parent.parents):
        if above.exists():
            if not above.is_dir():
                raise InvalidArgumentError(argument, f"cannot write {path}: {above} is a file, not a directory")
            break
        missing = above
    raise InvalidArgumentError(
        argument, f"cannot write {path}: directory {missing} does not exist; create it first or choose another path"
    )
