"""Teeing ``sys.stdout`` and ``sys.stderr`` into the run's console log.

The terminal receives exactly what the program wrote, carriage returns included, so
progress bars keep redrawing in place and ``isatty()`` answers as before. The log file
receives finished lines: a carriage return starts the line over, as a terminal would show
it, so a progress bar leaves one line (its last state) instead of thousands of redraws.

Only writes through Python's ``sys.stdout``/``sys.stderr`` are seen: output of child
processes and of C code writing to the file descriptors directly is not, and neither are
``logging`` handlers created before the run started (they hold the old stream).

The file is written without Python's buffering; lines are collected here and written by
:meth:`ConsoleCapture.flush`, which the run's writer thread calls every flush, so a
SIGKILL loses at most the last interval, and a forked child never re-writes lines its
parent had buffered. A line is written once it is finished (or once it has grown past
:data:`MAX_PARTIAL_LINE` characters), so a secret split across two writes is redacted
whole (:mod:`runpoint.logs.redact`); redaction runs in ``flush``, off the caller's thread.
The file rotates into compressed segments at a size (:mod:`runpoint.logs.rotation`).
"""

from __future__ import annotations

import io
import re
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

from .._util.forksafe import call_after_fork
from ..logs.redact import LineRedactor, Redactor
from ..logs.rotation import SegmentedLogFile, compress_leftovers, compressor
from ..logs.segments import (
    CONSOLE_LOG_NAME,
    LocalLogFolder,
    logical_logs,
    sort_console_logs,
)

__all__ = ["CONSOLE_LOG_NAME", "ConsoleCapture", "clean_console", "console_logs", "sort_console_logs"]

MAX_PARTIAL_LINE = 1 << 16  # an unfinished line this long is written as a line of its own


class _LineAssembler:
    """Turns a stream of text with ``\\r`` and ``\\n`` into finished lines."""

    def __init__(self) -> None:
        self._current = ""
        self._pending_cr = False
        self.lines: list[str] = []

    def feed(self, text: str) -> None:
        current = self._current
        for piece in _split_keeping(text):
            if piece == "\n":
                self.lines.append(current + "\n")
                current = ""
                self._pending_cr = False
            elif piece == "\r":
                self._pending_cr = True
            else:
                if self._pending_cr:
                    current = ""  # the text after a lone CR redraws the line
                    self._pending_cr = False
                current += piece
        if len(current) >= MAX_PARTIAL_LINE:  # never hold a line without end forever
            self.lines.append(current + "\n")
            current = ""
        self._current = current

    def take_partial(self) -> str:
        """The unfinished line, for the end of the run."""
        partial, self._current = self._current, ""
        return partial


_NEWLINES = re.compile(r"(\r|\n)")


def _split_keeping(text: str) -> list[str]:
    return [piece for piece in _NEWLINES.split(text) if piece]


class _Tee(io.TextIOBase):
    """Looks like the original stream; copies what is written to the capture."""

    def __init__(self, original: TextIO, capture: "ConsoleCapture") -> None:
        self._original = original
        self._capture = capture

    def write(self, text: str) -> int:
        written = self._original.write(text)
        self._capture._feed(text)
        return written if written is not None else len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._original, "encoding", "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._original, "errors", None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)


class ConsoleCapture:
    """Copies stdout and stderr to ``path`` while started.

    Example::

        capture = ConsoleCapture(run_dir / "logs" / "console.log")
        capture.start()
        print("hello")           # on the terminal and, after flush(), in the file
        capture.stop()
    """

    def __init__(self, path: Path, *, segment_bytes: int | None = None, redactor: Redactor | None = None,
                 run_id: str | None = None) -> None:
        self.path = path
        self.segment_bytes = segment_bytes
        self.run_id = run_id
        self._redactor = LineRedactor(redactor) if redactor is not None and redactor.active else None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # the writer thread's flush and stop's last flush
        self._assembler = _LineAssembler()
        self._file: SegmentedLogFile | None = None
        self._tees: dict[str, _Tee] = {}
        self._originals: dict[str, TextIO] = {}
        self._stopped = False
        self._direct = False
        call_after_fork(self._continue_in_forked_child)

    def start(self) -> None:
        self._file = SegmentedLogFile(self.path, self.segment_bytes, self.run_id)
        compress_leftovers(self.path.parent)  # segments a crashed run left uncompressed
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if original is None:
                continue
            tee = _Tee(original, self)
            self._originals[name] = original
            self._tees[name] = tee
            setattr(sys, name, tee)

    def _feed(self, text: str) -> None:
        if self._stopped:
            return
        with self._lock:
            self._assembler.feed(text)
        if self._direct:
            self.flush()

    def flush(self, include_partial: bool = False) -> None:
        """Write finished lines (and the unfinished one, at the end) to the file."""
        with self._write_lock:  # taken first: two flushes write their lines in the order they took them
            with self._lock:
                lines = self._assembler.lines
                self._assembler.lines = []
                if include_partial:
                    partial = self._assembler.take_partial()
                    if partial:
                        lines.append(partial + "\n")
            if self._redactor is not None:
                lines = self._redactor.lines(lines) + (self._redactor.close() if include_partial else [])
            if lines and self._file is not None:
                if self._direct:
                    self._file.reopen_if_moved()
                self._file.write("".join(lines).encode("utf-8", errors="replace"))

    def stop(self) -> None:
        """Restore the streams (unless someone replaced them since) and close the file."""
        for name, tee in self._tees.items():
            if getattr(sys, name) is tee:
                setattr(sys, name, self._originals[name])
        self._tees.clear()
        self.flush(include_partial=True)
        self._stopped = True
        if self._file is not None:
            self._file.close()
            if self._file.rotated:  # the last segments compressed before the run's files are shipped
                compressor().wait(timeout=120)
            self._file = None

    def _continue_in_forked_child(self) -> None:
        # The parent writes the lines it had collected; the child writes its own at once,
        # since no writer thread flushes for it.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._assembler.lines = []
        self._direct = True
        if self._file is not None:
            self._file.rotate_enabled = False  # the parent rotates the file; the child follows it


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")


def console_logs(logs: Path) -> list[str]:
    """The names of a run's console logs in the order they were written: console.log, console_resume_1.log, ...

    A multi-rank job's other ranks' logs (``console.rank1.log``) follow rank 0's of the same attempt.
    A log may exist only as segments (``console.log.1.zst``...): read it with
    :func:`runpoint.logs.segments.read_log` / ``tail_log`` on ``LocalLogFolder(logs)``.
    """
    return logical_logs(LocalLogFolder(logs).sizes())


def clean_console(text: str) -> str:
    """Console text as a terminal would show it: colours removed, ``\\r`` rewrites applied."""
    lines = []
    for line in _ANSI.sub("", text).split("\n"):
        if "\r" in line:
            parts = [part for part in line.split("\r") if part]
            line = parts[-1] if parts else ""
        lines.append(line)
    return "\n".join(lines)
