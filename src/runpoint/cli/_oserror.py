"""One line for an OSError: which path could not be written or read, why, and what to do."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from ..errors import RunpointError


class OutputError(RunpointError):
    """A write that failed, explained in one line: the path, why, and what to do."""

_DENIED = {errno.EACCES, errno.EPERM}


def _first_file_above(path: Path) -> Path | None:
    """The nearest ancestor of ``path`` that exists but is not a directory."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def _highest_missing(path: Path) -> Path | None:
    """The missing directory whose parent exists (``/a`` for ``/a/b/c`` when only ``/`` exists)."""
    missing = None
    for parent in path.parents:
        if parent.exists():
            return missing
        missing = parent
    return missing


def describe(
    exc: OSError, target: str | os.PathLike[str] | None = None, fix: str = "choose another path", verb: str = "write"
) -> str:
    """``cannot <verb> <path>: <why>; <fix>`` for ``exc``, about ``target`` when given.

    ``target`` is the path the user named; the error's own path may be a temporary file
    next to it, so the explanation looks at the directories above.
    """
    where = Path(os.fspath(target)) if target is not None else (Path(os.fsdecode(exc.filename)) if exc.filename else None)
    if where is None:
        return f"{exc.strerror or exc}; {fix}"
    where = where.absolute()  # "cannot write aaa1.csv" does not say where that is
    probe = Path(os.fsdecode(exc.filename)) if exc.filename else where
    code = exc.errno
    if code == errno.ENOTDIR:
        blocker = _first_file_above(probe) or _first_file_above(where)
        why = f"{blocker} is a file, not a directory" if blocker else "a part of the path is not a directory"
    elif code == errno.ENOENT:
        gone = _highest_missing(probe)
        if gone is None:
            return f"{where} does not exist; check the path"
        why = f"directory {gone} does not exist"
        fix = f"create it first or {fix}"
    elif code == errno.EEXIST and not probe.is_dir():
        why = "it is a file, not a directory" if probe == where else f"{probe} is a file, not a directory"
    elif code == errno.EISDIR:
        why = f"{probe} is a directory"
    elif code in _DENIED:
        why = "permission denied"
        fix = f"{fix} you can write to"
    elif code == errno.EROFS:
        why = "the file system is read-only"
    elif code == errno.ENOSPC:
        why = "no space left on the device"
        fix = f"free some space or {fix}"
    else:
        why = exc.strerror or str(exc)
    return f"cannot {verb} {where}: {why}; {fix}"


@contextlib.contextmanager
def writing(target: str | os.PathLike[str] | None, fix: str = "choose another path") -> Iterator[None]:
    """Turn an OSError raised inside into :class:`OutputError` about ``target``."""
    try:
        yield
    except RunpointError:  # some are OSErrors too (CheckpointNotFoundError) and say it better
        raise
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OutputError(describe(exc, target, fix)) from exc


