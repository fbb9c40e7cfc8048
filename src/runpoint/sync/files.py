"""A run's files on the server: what changed since the last sync, and checkpoints whole or not at all.

Files are compared by size and modification time with what ``sync.db`` says was sent.
A file that keeps growing (the console log) is sent again at most every
:data:`GROWING_FILE_INTERVAL` seconds while the run lives, and once more at the end.
``media/`` files go up as files too (the dashboard serves them from the object store; the
records travel in batches), and ``checkpoints/`` by checkpoint: each
committed checkpoint directory goes up with its manifest last (on an object store the
manifest is the commit), then the registry hears of it; a checkpoint retention removed
here is removed there.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..store.base import Store
from ..store.registry import checkpoint_registry
from .push import FileTarget, SyncTarget
from .state import SyncState

GROWING_FILE_INTERVAL = 10.0
SKIPPED_DIRS = ("checkpoints",)


def _walk(run_dir: Path) -> list[tuple[str, os.stat_result]]:
    found = []
    for directory, dirs, names in os.walk(run_dir):
        rel_dir = Path(directory).relative_to(run_dir)
        if rel_dir == Path("."):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        for name in names:
            path = Path(directory) / name
            if name.startswith(".") or path.is_symlink():
                continue
            try:
                found.append(((rel_dir / name).as_posix(), path.stat()))
            except OSError:
                continue  # removed meanwhile
    return found


def sync_files(state: SyncState, files: FileTarget, run_id: str, run_dir: Path, *, final: bool) -> tuple[int, int]:
    """Upload the run's new and changed files; ``(count, bytes)`` sent."""
    sent = state.sent_files(run_id)
    count = total = 0
    now = time.time()
    for rel, info in _walk(run_dir):
        before = sent.get(rel)
        if before is not None and before[:2] == (info.st_size, info.st_mtime_ns):
            continue
        if before is not None and not final and now - before[2] < GROWING_FILE_INTERVAL:
            continue
        files.upload(run_id, rel, run_dir / rel)
        state.file_sent(run_id, rel, info.st_size, info.st_mtime_ns)
        count, total = count + 1, total + info.st_size
    return count, total


def sync_checkpoints(source: Store, state: SyncState, target: SyncTarget, run_id: str, run_dir: Path) -> int:
    """Upload committed checkpoints the server lacks, mirror retention and the best flag; how many went up."""
    local_registry, remote_registry = checkpoint_registry(source), target.registry
    if local_registry is None or remote_registry is None or target.files is None:
        return 0
    remote = {r.step: r for r in remote_registry.list_checkpoints(run_id, include_deleted=True)}
    uploaded = 0
    for record in local_registry.list_checkpoints(run_id, include_deleted=True):
        there = remote.get(record.step)
        inside = "://" not in record.path and not os.path.isabs(record.path)
        if record.deleted_at is not None:
            if there is not None and there.deleted_at is None:
                if inside:
                    target.files.delete_prefix(run_id, record.path.rstrip("/") + "/")
                remote_registry.mark_checkpoint_deleted(run_id, record.step, record.deleted_at)
            continue
        if there is None or there.hash != record.hash or there.deleted_at is not None:
            if inside:
                local_dir = run_dir / record.path
                if not local_dir.is_dir():
                    continue  # removed since the registry was read: the next pass sees it deleted
                target.files.upload_checkpoint(run_id, local_dir, record.path)
            remote_registry.add_checkpoint(record)
            uploaded += 1
        elif there.is_best != record.is_best and record.is_best:
            remote_registry.set_best_checkpoint(run_id, record.step)
    if uploaded:
        _sync_pointers(state, target.files, run_id, run_dir)
    return uploaded


def _sync_pointers(state: SyncState, files: FileTarget, run_id: str, run_dir: Path) -> None:
    """The ``latest``/``best`` pointer files, after the checkpoints they name."""
    directory = run_dir / "checkpoints"
    for pointer in sorted(directory.glob("*")) if directory.is_dir() else []:
        if pointer.is_file() and not pointer.is_symlink() and not pointer.name.startswith("."):
            info = pointer.stat()
            files.upload(run_id, f"checkpoints/{pointer.name}", pointer)
            state.file_sent(run_id, f"checkpoints/{pointer.name}", info.st_size, info.st_mtime_ns)
