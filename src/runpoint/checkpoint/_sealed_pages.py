"""Restoring a local encrypted file: each segment decrypted from the mapped file straight into new pages.

The streaming reader (:class:`._sealing.OpeningReader`) reads the ciphertext into a buffer
of its own, hashes it and decrypts it: one copy more than a plain restore, which maps the
file, and all of it on the thread that holds the GIL. Here the sealed file is mapped and
each 1 MiB segment is decrypted from its pages into its place in one anonymous mapping,
which then becomes the tensors (no intermediate buffer, no copy). Meanwhile a helper
thread does what needs no GIL: it faults in the new pages ahead of the decryption
(``MADV_POPULATE_WRITE``, which leaves their contents alone) and hashes the ciphertext
(xxh3 releases the GIL). The decryption itself cannot be spread over threads: the
``cryptography`` package holds the GIL for AES-GCM, so two threads open no faster than one.

OpenSSL's GCM writes a segment's plaintext and then checks its tag, so the new pages hold
unauthenticated bytes while a segment is being opened. They never leave this module
unless every tag checked: on any failure the mapping is closed and the error raised.
"""

from __future__ import annotations

import contextlib
import mmap
import threading
from typing import TYPE_CHECKING, Any

from ._sealing import (
    HEADER_BYTES,
    TAG_BYTES,
    SegmentOpener,
    check_header,
    plain_size,
    segments_of,
)

if TYPE_CHECKING:
    from .keys import EncryptionKey

CHUNK_BYTES = 8 << 20  # what the helper faults in at a time
PAGE_BYTES = mmap.PAGESIZE


def decrypt_mapped(key: "EncryptionKey", sealed: mmap.mmap, name: str, file_id: str | None, segment_bytes: int,
                   digest: Any | None) -> mmap.mmap:
    """The plaintext of the whole sealed file mapped as ``sealed``, in new pages; ValueError if unreadable.

    ``digest`` (a hash object, or None) is fed the whole of ``sealed`` on a helper thread,
    finished when this returns. A failed tag anywhere raises before any page is returned.
    """
    plain_bytes = plain_size(len(sealed), segment_bytes)
    header = bytes(sealed[:HEADER_BYTES])
    problem = check_header(header, name, file_id, segment_bytes)
    if problem is not None:
        raise ValueError(problem)
    opener = SegmentOpener(key, header, name)
    pages = mmap.mmap(-1, max(1, plain_bytes), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    with contextlib.suppress(AttributeError, OSError):
        pages.madvise(mmap.MADV_HUGEPAGE)  # 2 MiB faults: 4 KiB ones cost more than the decryption (on a VM, 3x)
    helper = _Helper(pages, plain_bytes, segment_bytes, sealed, digest)
    try:
        _open_all(opener, memoryview(sealed), memoryview(pages), plain_bytes, segment_bytes, helper)
    except BaseException:
        helper.stop()
        with contextlib.suppress(BufferError):  # a failed segment's traceback may still view it: freed with it
            pages.close()
        raise
    helper.join()
    return pages


def _open_all(opener: SegmentOpener, sealed: memoryview, pages: memoryview, plain_bytes: int,
              segment_bytes: int, helper: "_Helper") -> None:
    count = segments_of(plain_bytes, segment_bytes)
    with sealed, pages:  # (released on return, so that the mapping can be closed on failure)
        for index in range(count):
            if index % helper.per_chunk == 0:
                helper.reach(index // helper.per_chunk)
            start = index * segment_bytes
            length = min(segment_bytes, plain_bytes - start)
            at = HEADER_BYTES + index * (segment_bytes + TAG_BYTES)
            opener.open(index, index == count - 1, sealed[at:at + length + TAG_BYTES], pages[start:start + length])


class _Helper:
    """Faults in the new pages ahead of the decryption, then hashes the ciphertext, on a thread of its own.

    The pages are faulted in chunks of whole segments by writing a byte to each page (torch
    releases the GIL for it). That write would clobber plaintext, so a chunk is faulted
    either by the helper before the decryption reaches it or by the decryption itself, never
    both: the helper only takes chunks past the one being decrypted, and the decryption
    waits for a chunk the helper is in.
    """

    def __init__(self, pages: mmap.mmap, plain_bytes: int, segment_bytes: int, sealed: mmap.mmap,
                 digest: Any | None) -> None:
        self.per_chunk = max(1, CHUNK_BYTES // segment_bytes)
        self._chunk_bytes = self.per_chunk * segment_bytes
        self._chunks = -(-plain_bytes // self._chunk_bytes)
        self._changed = threading.Condition()
        self._reached = 0  # the chunk being decrypted
        self._next = 1  # the next chunk the helper may fault
        self._busy: int | None = None  # the chunk the helper is faulting
        self._stopped = False
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(pages, plain_bytes, sealed, digest),
                                        name="runpoint-decrypt-helper", daemon=True)
        self._thread.start()

    def reach(self, chunk: int) -> None:
        """The decryption is about to write into ``chunk``: wait while the helper faults it."""
        with self._changed:
            self._reached = chunk
            while self._busy == chunk:
                self._changed.wait()

    def _take(self) -> int | None:
        with self._changed:
            self._busy = None
            self._changed.notify_all()
            chunk = max(self._next, self._reached + 1)
            if chunk >= self._chunks:
                return None
            self._busy, self._next = chunk, chunk + 1
            return chunk

    def _run(self, pages: mmap.mmap, plain_bytes: int, sealed: mmap.mmap, digest: Any | None) -> None:
        try:
            import torch

            every_page = torch.frombuffer(pages, dtype=torch.uint8, count=plain_bytes)[::PAGE_BYTES] if plain_bytes else None
            while (chunk := self._take()) is not None:
                assert every_page is not None
                first = chunk * self._chunk_bytes // PAGE_BYTES
                every_page[first:first + self._chunk_bytes // PAGE_BYTES].fill_(0)
            del every_page
            if digest is not None and not self._stopped:
                with memoryview(sealed) as view:
                    digest.update(view)
        except BaseException as exc:  # pragma: no cover - reported by join
            self.error = exc

    def stop(self) -> None:
        """Let the helper finish as soon as it can (the decryption failed), and wait for it."""
        with self._changed:
            self._next, self._stopped = self._chunks, True
        self._thread.join()

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:  # pragma: no cover - a failing hash or fault is an OSError of the read
            raise OSError(f"reading the encrypted file failed: {self.error}") from self.error
