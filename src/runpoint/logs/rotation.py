"""Writing a console log in size-limited segments, compressed with zstd in the background.

:class:`SegmentedLogFile` appends whole writes to ``console.log``; once the file has
reached its limit it is renamed to ``console.log.<N>`` and a new ``console.log`` is started,
so a segment ends where a write (of whole lines) ended. One background thread per
process compresses each closed segment to ``console.log.<N>.zst`` (through a dot-file
renamed into place, then the plain segment is removed): a crash at any moment leaves every
closed segment readable in one form or the other (:mod:`runpoint.logs.segments`), and the
next run that opens the folder finishes the job.

Without ``zstandard`` segments stay uncompressed; runpoint says so once.

Example::

    log = SegmentedLogFile(run_dir / "logs" / "console.log", segment_bytes=64 * 2**20)
    log.write(b"epoch 1 ...\\n")
    log.close()
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
from pathlib import Path

from .._util.optional import is_installed
from .run_log import emit
from .segments import SEGMENT_NAME, next_segment_number, segment_name

logger = logging.getLogger("runpoint.console")

ZSTD_LEVEL = 3


class SegmentedLogFile:
    """An append-only log file that rotates into numbered segments at ``segment_bytes``."""

    def __init__(self, path: Path, segment_bytes: int | None, run_id: str | None = None) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self.run_id = run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = self._open()
        self._size = os.fstat(self._fd).st_size
        self.rotate_enabled = segment_bytes is not None
        self.rotated = 0

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self, data: bytes) -> None:
        """Append ``data`` (whole lines), rotating at line ends whenever the file reaches its limit."""
        limit = self.segment_bytes if self.rotate_enabled else None
        while data and limit is not None and self._size + len(data) > limit:
            cut = data.rfind(b"\n", 0, max(limit - self._size, 0)) + 1
            if cut == 0:  # no line end fits: the first line goes whole (into a fresh file if this one has text)
                if self._size:
                    self.rotate()
                    continue
                cut = data.find(b"\n") + 1 or len(data)
            self._append(data[:cut])
            self.rotate()
            data = data[cut:]
        if data:
            self._append(data)
            if limit is not None and self._size >= limit:
                self.rotate()

    def _append(self, data: bytes) -> None:
        if self._fd is None:
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self._size += len(data)

    def rotate(self) -> Path | None:
        """Close the current file as the next segment and start a new one; the segment's path."""
        if self._fd is None or self._size == 0:
            return None
        number = next_segment_number(os.listdir(self.path.parent), self.path.name)
        segment = self.path.with_name(segment_name(self.path.name, number))
        os.close(self._fd)
        self._fd = None
        os.rename(self.path, segment)
        self._fd, size, self._size = self._open(), self._size, 0
        self.rotated += 1
        emit(logger, logging.INFO, "console.rotated", "runpoint: %s reached %d bytes; continued in a new file, "
             "the old one is %s", self.path.name, size, segment.name, run_id=self.run_id, path=segment.name, bytes=size)
        compressor().submit(segment)
        return segment

    def reopen_if_moved(self) -> None:
        """In a forked child: follow the file to its new start if the parent rotated it meanwhile."""
        if self._fd is None:
            return
        try:
            moved = os.fstat(self._fd).st_ino != os.stat(self.path).st_ino
        except FileNotFoundError:
            moved = True
        if moved:
            os.close(self._fd)
            self._fd = self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def compress_segment(segment: Path) -> Path | None:
    """Replace the plain segment by its ``.zst``; None when it was already done (or zstandard is missing)."""
    import zstandard

    target = segment.with_name(segment.name + ".zst")
    temporary = segment.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(segment, "rb") as source, open(temporary, "wb") as sink:
            size = os.fstat(source.fileno()).st_size
            zstandard.ZstdCompressor(level=ZSTD_LEVEL).copy_stream(source, sink, size=size)
            sink.flush()
            os.fsync(sink.fileno())
        os.replace(temporary, target)
    except FileNotFoundError:  # another process (a rank sharing the folder) compressed it first
        temporary.unlink(missing_ok=True)
        return None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    segment.unlink(missing_ok=True)
    return target


class Compressor:
    """One background thread compressing closed segments, in the order they were closed."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Path] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.available = is_installed("zstandard")
        self._said_missing = False

    def submit(self, segment: Path) -> None:
        if not self.available:
            if not self._said_missing:
                self._said_missing = True
                emit(logger, logging.WARNING, "console.uncompressed", "runpoint: zstandard is not installed: console "
                     "log segments are kept uncompressed (pip install 'runpoint[zstd]' compresses them)")
            return
        with self._lock:
            self._queue.put(segment)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="runpoint-console-compress", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            segment = self._queue.get()
            try:
                compress_segment(segment)
            except Exception as exc:  # the plain segment stays: readers read it as it is
                emit(logger, logging.WARNING, "console.compress_failed", "runpoint: could not compress %s: %s",
                     segment, exc, path=str(segment))
            finally:
                self._queue.task_done()

    def wait(self, timeout: float) -> bool:
        """Wait until every submitted segment is compressed (at most ``timeout`` s); whether it was."""
        done = threading.Event()

        def join() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        return done.wait(timeout)


_compressor: Compressor | None = None
_compressor_lock = threading.Lock()


def compressor() -> Compressor:
    global _compressor
    with _compressor_lock:
        if _compressor is None:
            _compressor = Compressor()
        return _compressor


_TEMPORARY = re.compile(r"^\..+\.zst\.(\d+)\.\d+\.tmp$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # someone else's process: leave its file alone
    return True


def compress_leftovers(folder: Path) -> int:
    """Queue the plain segments a crashed process left in ``folder``; remove those whose ``.zst`` is complete."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return 0
    queued = 0
    for name in sorted(names):
        temporary = _TEMPORARY.match(name)
        if temporary and not _alive(int(temporary.group(1))):  # a compression a killed process left halfway
            (folder / name).unlink(missing_ok=True)
            continue
        match = SEGMENT_NAME.match(name)
        if match is None or match.group("zst"):
            continue
        if name + ".zst" in names:
            (folder / name).unlink(missing_ok=True)  # the crash came between the .zst's rename and this
        elif compressor().available:
            compressor().submit(folder / name)
            queued += 1
    return queued
