"""Atomic commit: a checkpoint exists whole, or not at all, whenever the process dies.

Why this module exists. A training job can be killed at any instant: SIGKILL from the
OOM killer, a preempted node, a power loss. If it dies halfway through writing
``step-000500``, the next start must neither load that half nor lose ``step-000400``.
Two mechanisms give that guarantee, and which one is available depends on the storage:

- **Rename** (local and network file systems). The files are written into a hidden
  staging directory, each fsynced, the manifest last; the staging directory is fsynced
  and renamed to ``step-000500``; the parent is fsynced so that the rename survives a
  power loss. ``rename(2)`` is atomic, so a reader sees no ``step-000500`` or the
  complete one. A partial directory never carries a checkpoint's name.
- **Commit file** (object stores: S3, GCS, Azure). They have no atomic rename of a
  "directory" (a prefix is many objects; a copy-then-delete can be observed halfway), but
  a single PUT is atomic. So the data objects are uploaded under their final prefix and
  ``manifest.json`` goes last: a checkpoint is committed exactly when its manifest
  object exists. Readers ignore prefixes without one.

Both layouts follow the same reading rule (no manifest, no checkpoint), so readers need
not know which one wrote a checkpoint. Leftovers of a save that died (staging
directories, prefixes without a manifest, half-deleted checkpoints) carry the process
that made them (host and pid), and :func:`cleanup_leftovers` removes them at the next
start once that process is gone, never the files of a save still in progress elsewhere.

Deletion is careful too: a checkpoint is renamed out of the way (or, on object stores,
its manifest removed first) before its files go, and it is not deleted while another
reader holds it open: readers take a shared ``flock`` on the manifest, the deleter
tries an exclusive one and skips the checkpoint if that fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import threading
import time
import zlib
from collections import Counter
from typing import Callable, Iterator

from ..artifacts.manifest import MANIFEST_NAME, parse_step
from ..artifacts.storage import (
    Artifacts,
    NotRegularFileError,
    open_regular,
)
from ..run.liveness import process_alive

STAGING = ".tmp-"
REPLACED = ".replaced-"
DELETING = ".deleting-"
WRITING_MARKER = ".writing"  # inside a prefix being written, on object stores
STALE_AFTER_S = 24 * 3600
POINTER_LIMIT = 256  # bytes: a pointer holds one checkpoint name  # a leftover of another host is removed after this long

_HOST = f"{zlib.crc32(socket.gethostname().encode()):08x}"
_reading: Counter[tuple[str, str]] = Counter()  # (root, name) -> readers in this process
_reading_lock = threading.Lock()


def _owner_tag() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}-{_HOST}"


def _owner_is_gone(tag: str, age_s: float | None) -> bool:
    """Whether the process named in a leftover's ``<pid>-<random>-<host>`` tag is gone."""
    try:
        pid_text, _, host = tag.rsplit("-", 2)
        pid = int(pid_text.rsplit("-", 1)[-1])
    except ValueError:
        return age_s is None or age_s > STALE_AFTER_S
    if host == _HOST:
        return process_alive(socket.gethostname(), pid) is False
    return age_s is not None and age_s > STALE_AFTER_S


class Staging:
    """A checkpoint being written: files go to :attr:`path`, :meth:`commit` publishes it."""

    def __init__(self, storage: Artifacts, name: str) -> None:
        self.storage = storage
        self.name = name
        self._done = False
        if storage.is_local:
            self.path = f"{STAGING}{name}-{_owner_tag()}"
            storage.makedirs(self.path)
        else:
            self.path = name
            marker = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()})
            storage.write_small(marker, name, WRITING_MARKER)
            storage.remove_file(name, MANIFEST_NAME)  # re-saving a step: it is uncommitted from here on

    def commit(self, manifest_json: str) -> None:
        """Publish the checkpoint: after this returns it survives a crash or power loss."""
        storage = self.storage
        sink = storage.open_write(self.path, MANIFEST_NAME)
        try:
            sink.write(manifest_json.encode("utf-8"))
            sink.close()
        except BaseException:
            sink.abort()
            raise
        if not storage.is_local:
            storage.remove_file(self.name, WRITING_MARKER)
            self._done = True
            return
        storage.sync_dir(self.path)
        replaced = None
        if os.path.lexists(storage.path(self.name)):
            replaced = f"{REPLACED}{self.name}-{_owner_tag()}"
            storage.rename(self.name, replaced)
        try:
            storage.rename(self.path, self.name)
        except BaseException:
            if replaced is not None:  # the old checkpoint must not stay hidden while this process lives
                try:
                    storage.rename(replaced, self.name)
                    storage.sync_root()
                except OSError:
                    pass  # cleanup_leftovers puts it back once this process is gone
            raise
        storage.sync_root()
        self._done = True
        if replaced is not None:
            storage.remove_tree(replaced)

    def abort(self) -> None:
        """Remove what was written; the previous checkpoints are untouched."""
        if not self._done:
            self._done = True
            self.storage.remove_tree(self.path)


def cleanup_leftovers(storage: Artifacts) -> list[str]:
    """Remove what dead saves and deletions left behind; returns the names removed."""
    removed = []
    names = storage.list_names()
    for name in names:
        if storage.is_local and name.startswith((STAGING, DELETING, REPLACED)):
            prefix = next(p for p in (STAGING, DELETING, REPLACED) if name.startswith(p))
            try:
                age = time.time() - os.stat(storage.path(name)).st_mtime
            except FileNotFoundError:
                continue
            if not _owner_is_gone(name[len(prefix):], age):
                continue
            if os.path.isfile(storage.path(name)):
                storage.remove_file(name)
                removed.append(name)
                continue
            if prefix == REPLACED:
                target = name[len(prefix):].rsplit("-", 3)[0]
                if not storage.exists(target, MANIFEST_NAME):
                    # died between moving the old checkpoint aside and moving the new one in
                    storage.remove_tree(target)
                    storage.rename(name, target)
                    storage.sync_root()
                    continue
            storage.remove_tree(name)
            removed.append(name)
        elif not storage.is_local and parse_step(name) is not None and not storage.exists(name, MANIFEST_NAME):
            if _remote_writer_alive(storage, name):
                continue
            storage.remove_tree(name)
            removed.append(name)
    return removed


def _remote_writer_alive(storage: Artifacts, name: str) -> bool:
    try:
        marker = json.loads(storage.read_bytes(name, WRITING_MARKER))
    except (FileNotFoundError, ValueError):
        return False
    host, pid, started = marker.get("host"), marker.get("pid"), float(marker.get("started", 0))
    if host == socket.gethostname():
        return process_alive(host, pid) is not False
    return time.time() - started < STALE_AFTER_S


@contextlib.contextmanager
def reading(storage: Artifacts, name: str) -> Iterator[bool]:
    """Hold ``name`` against deletion while it is read; yields False if it is gone."""
    key = (storage.root, name)
    with _reading_lock:
        _reading[key] += 1
    fd = -1
    try:
        if storage.is_local:
            try:
                fd = open_regular(storage.root, name, MANIFEST_NAME)
            except (FileNotFoundError, NotADirectoryError):
                yield False
                return
            except NotRegularFileError:  # a crafted manifest: reading it reports the checkpoint corrupt
                yield True
                return
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_SH)
            try:  # a deleter may have moved it away while we waited for the lock
                still_there = os.fstat(fd).st_ino == os.stat(storage.path(name, MANIFEST_NAME)).st_ino
            except FileNotFoundError:
                still_there = False
            yield still_there
        else:
            yield storage.exists(name, MANIFEST_NAME)
    finally:
        if fd >= 0:
            os.close(fd)  # releases the lock
        with _reading_lock:
            _reading[key] -= 1
            if not _reading[key]:
                del _reading[key]


def remove(storage: Artifacts, name: str, remove_files: Callable[[Artifacts, str], None] | None = None,
           *, keep: Callable[[], bool] | None = None) -> bool:
    """Delete a committed checkpoint unless someone is reading it; True if it went.

    ``remove_files(storage, directory)`` deletes the files once the checkpoint is out of
    sight (the IO's ``remove``); by default the whole directory goes. ``keep()`` is asked
    once the checkpoint is locked for deletion (no reader holds it): True keeps it. A
    model registration holds its checkpoint as a reader while it records the version, so
    ``keep`` asking the registry then sees every version recorded before the lock.
    """
    remove_files = remove_files or (lambda where, directory: where.remove_tree(directory))
    with _reading_lock:
        if _reading[(storage.root, name)]:
            return False
    if not storage.is_local:
        if keep is not None and keep():
            return False
        storage.remove_file(name, MANIFEST_NAME)  # uncommitted first: never half a checkpoint
        remove_files(storage, name)
        return True
    try:
        fd = open_regular(storage.root, name, MANIFEST_NAME)
    except (FileNotFoundError, NotADirectoryError, NotRegularFileError):
        fd = -1
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # another process is reading it; retention tries again later
            except OSError:
                pass  # a file system without flock
        if keep is not None and keep():
            return False
        doomed = f"{DELETING}{name}-{_owner_tag()}"
        try:
            storage.rename(name, doomed)
        except FileNotFoundError:
            return True
        storage.sync_root()
    finally:
        if fd >= 0:
            os.close(fd)
    remove_files(storage, doomed)
    return True


def write_pointer(storage: Artifacts, pointer: str, target: str | None) -> None:
    """Replace the pointer file ``latest`` or ``best`` as one unit (None removes it).

    Readers see the old or the new pointer, never half of one (a rename, or one PUT).
    Pointers mirror the manifests, which are the truth, so they are not fsynced: after a
    power loss a pointer may be stale, and the next manager start rewrites it.
    """
    if target is None:
        storage.remove_file(pointer)
        return
    if not storage.is_local:
        storage.write_small(target + "\n", pointer)
        return
    temporary = f"{STAGING}{pointer}-{_owner_tag()}"  # a leftover of a crash here is cleaned like any
    try:
        with open(storage.path(temporary), "w", encoding="utf-8") as handle:
            handle.write(target + "\n")
        storage.rename(temporary, pointer)
    except BaseException:
        storage.remove_file(temporary)
        raise


def read_pointer(storage: Artifacts, pointer: str) -> str | None:
    try:
        target = storage.read_bytes(pointer, limit=POINTER_LIMIT).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError, ValueError):  # missing, a link, a FIFO, too long: no pointer
        return None
    return target if parse_step(target) is not None else None
