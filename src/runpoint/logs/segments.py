"""A console log in segments: the names, and reading one back whole or its tail, wherever it is stored.

A console log (``console.log``, ``console_resume_1.log``, ``console.rank2.log``...) that
reaches its size limit is renamed to its next numbered segment and started again::

    logs/console.log.1.zst     the first bytes written (zstd, compressed in the background)
    logs/console.log.2         a segment not compressed yet (or zstandard not installed)
    logs/console.log           the newest bytes

The log's text is its segments in order, then the file itself. A segment is only ever
renamed into place whole, and its ``.zst`` only ever replaces it whole (written to a
dot-file first), so a reader finds each segment complete in one form or the other; when
both are there (a crash between the two steps) the ``.zst`` is read.

The readers work on a :class:`LogFolder`: a local ``logs/`` directory
(:class:`LocalLogFolder`) or the team server's object store (the dashboard's adapter).
:mod:`runpoint.logs.rotation` writes the segments.

Example::

    folder = LocalLogFolder(run_dir / "logs")
    for name in logical_logs(folder.sizes()):
        text = read_log(folder, name).decode()
"""

from __future__ import annotations

import re
from collections import deque
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator, Protocol

CONSOLE_LOG_NAME = re.compile(r"^console(_resume_(\d+))?(\.rank(\d+))?\.log$")
SEGMENT_NAME = re.compile(r"^(?P<base>[^/]+\.log)\.(?P<number>[0-9]{1,9})(?P<zst>\.zst)?$")
RUNPOINT_LOG_NAME = re.compile(r"^runpoint(\.rank(\d+))?\.log$")
CHUNK = 1 << 20
ZSTD_HEADER_BYTES = 18  # the most a zstd frame header takes


def segment_name(base: str, number: int, compressed: bool = False) -> str:
    """``console.log.3`` (``console.log.3.zst`` when compressed)."""
    return f"{base}.{number}" + (".zst" if compressed else "")


def sort_console_logs(names: Iterable[str]) -> list[str]:
    """The console log names among ``names`` in the order they were written: console.log, console_resume_1.log, ...

    A multi-rank job's other ranks' logs (``console.rank1.log``) follow rank 0's of the same attempt.
    """
    found = [(name, CONSOLE_LOG_NAME.match(name)) for name in names]
    ordered = [(int(match.group(2) or 0), int(match.group(4) or 0), name) for name, match in found if match]
    return [name for _, _, name in sorted(ordered)]


def logical_logs(names: Iterable[str]) -> list[str]:
    """The console logs that ``names`` (a folder's files) hold, counting those only present as segments."""
    bases = set()
    for name in names:
        match = SEGMENT_NAME.match(name)
        bases.add(match.group("base") if match else name)
    return sort_console_logs(bases)


def parts_of(names: Iterable[str], base: str) -> list[str]:
    """The files of the log ``base`` in reading order: its segments (the ``.zst`` of each where there is one), then itself."""
    names = set(names)
    numbers: dict[int, str] = {}
    for name in names:
        match = SEGMENT_NAME.match(name)
        if match and match.group("base") == base:
            number = int(match.group("number"))
            if match.group("zst") or number not in numbers:
                numbers[number] = name
    return [numbers[number] for number in sorted(numbers)] + ([base] if base in names else [])


def next_segment_number(names: Iterable[str], base: str) -> int:
    """The number the next segment of ``base`` takes."""
    numbers = [int(m.group("number")) for m in map(SEGMENT_NAME.match, names) if m and m.group("base") == base]
    return max(numbers, default=0) + 1


class LogFolder(Protocol):
    """A ``logs/`` folder: its files' stored sizes, and each file as a binary stream."""

    def sizes(self) -> dict[str, int]: ...

    def open(self, name: str) -> BinaryIO: ...


class LocalLogFolder:
    """A ``logs/`` directory on this machine."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def sizes(self) -> dict[str, int]:
        if not self.path.is_dir():
            return {}
        found = {}
        for entry in self.path.iterdir():
            try:
                if entry.is_file() and not entry.is_symlink():
                    found[entry.name] = entry.stat().st_size
            except OSError:
                continue  # compressed and removed meanwhile
        return found

    def open(self, name: str) -> BinaryIO:
        return open(self.path / name, "rb")


def _zstd() -> object:
    from .._util.optional import require

    return require("zstandard", "zstd", "reading compressed console log segments")


def _chunks_of(folder: LogFolder, name: str) -> Iterator[bytes]:
    with folder.open(name) as handle:
        if name.endswith(".zst"):
            reader = _zstd().ZstdDecompressor().stream_reader(handle, read_across_frames=True)  # type: ignore[attr-defined]
            with reader:
                while chunk := reader.read(CHUNK):
                    yield chunk
            return
        while chunk := handle.read(CHUNK):
            yield chunk


def _open_parts(folder: LogFolder, base: str) -> list[str]:
    names = list(folder.sizes())
    return parts_of(names, base)


def iter_log(folder: LogFolder, base: str) -> Iterator[bytes]:
    """The bytes of the log ``base``, segment after segment, in chunks (memory stays flat)."""
    for name in _open_parts(folder, base):
        try:
            yield from _chunks_of(folder, name)
        except FileNotFoundError:
            # compressed meanwhile: the .zst holds the same bytes
            if SEGMENT_NAME.match(name) and not name.endswith(".zst"):
                yield from _chunks_of(folder, name + ".zst")
            else:
                raise


def read_log(folder: LogFolder, base: str) -> bytes:
    """The whole log ``base`` (every segment); for big logs prefer :func:`iter_log` or :func:`tail_log`."""
    return b"".join(iter_log(folder, base))


def uncompressed_size(folder: LogFolder, name: str, stored: int) -> int:
    """The size of ``name``'s text: ``stored`` for a plain file, the frame's content size for a ``.zst``."""
    if not name.endswith(".zst"):
        return stored
    with folder.open(name) as handle:
        header = handle.read(ZSTD_HEADER_BYTES)
    size = _zstd().frame_content_size(header)  # type: ignore[attr-defined]
    if size is None or size < 0:  # not recorded: count it the slow way
        return sum(len(chunk) for chunk in _chunks_of(folder, name))
    return int(size)


def log_size(folder: LogFolder, base: str, sizes: dict[str, int] | None = None) -> int:
    """The length of the log ``base``'s text across its segments."""
    sizes = folder.sizes() if sizes is None else sizes
    return sum(uncompressed_size(folder, name, sizes[name]) for name in parts_of(sizes, base))


def tail_log(folder: LogFolder, base: str, max_bytes: int) -> tuple[bytes, int]:
    """The last ``max_bytes`` of the log ``base`` (reading back across segments) and its whole length."""
    try:
        return _tail(folder, base, max_bytes)
    except FileNotFoundError:  # a segment was compressed while we read: the listing changed, read it again
        return _tail(folder, base, max_bytes)


def _tail(folder: LogFolder, base: str, max_bytes: int) -> tuple[bytes, int]:
    sizes = folder.sizes()
    parts = parts_of(sizes, base)
    lengths = [uncompressed_size(folder, name, sizes[name]) for name in parts]
    total, wanted = sum(lengths), max_bytes
    pieces: list[bytes] = []
    for name, length in zip(reversed(parts), reversed(lengths)):
        if wanted <= 0:
            break
        pieces.append(_last_bytes(folder, name, min(wanted, length), length))
        wanted -= length
    return b"".join(reversed(pieces)), total


def _last_bytes(folder: LogFolder, name: str, count: int, length: int) -> bytes:
    if count <= 0:
        return b""
    if not name.endswith(".zst"):
        with folder.open(name) as handle:
            handle.seek(max(0, length - count))
            return handle.read(count)
    kept: deque[bytes] = deque()
    held = 0
    for chunk in _chunks_of(folder, name):  # a compressed segment is read through to its end
        kept.append(chunk)
        held += len(chunk)
        while kept and held - len(kept[0]) >= count:
            held -= len(kept.popleft())
    return b"".join(kept)[-count:]


def tail_lines(folder: LogFolder, base: str, lines: int, block: int = 1 << 16) -> str:
    """The last ``lines`` lines of the log ``base`` as text, read back across segments as far as needed."""
    wanted = block
    while True:
        data, total = tail_log(folder, base, wanted)
        if data.count(b"\n") > lines or len(data) >= total:
            break
        wanted *= 4
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    return "\n".join(text.rstrip("\n").split("\n")[-lines:])
