"""Small file helpers: atomic replacement of whole files.

A file written with :func:`write_atomic` is either the old version or the new one after a
crash at any instant: the bytes go to a temporary name in the same directory, are
fsynced, renamed over the target, and the directory is fsynced so the rename survives a
power loss too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: str | os.PathLike[str], data: bytes | str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new file, never half."""
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        os.fchmod(fd, mode)  # mkstemp makes files private; these are ordinary files
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:  # name the file, not just "No space left"
            raise OSError(exc.errno, exc.strerror, str(target)) from exc
        raise
    fsync_dir(target.parent)


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
