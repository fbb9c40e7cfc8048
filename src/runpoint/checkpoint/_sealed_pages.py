"""Restoring a local encrypted file: each segment decrypted from the mapped file straight into new pages.

The streaming reader (:class:`._sealing.OpeningReader`) reads the ciphertext into a buffer
of its own, hashes it and decrypts it, one segment after another: one copy more than a
plain restore, which maps the file, and one core. Here the sealed file is mapped and each
1 MiB segment is decrypted from its pages into its place in one anonymous mapping, which
then becomes the tensors (no intermediate buffer, no copy). The segments are opened on
several threads, each a contiguous run of them: ``cryptography`` (>= 47, ``decrypt_into``)
releases the GIL while it runs AES-GCM, so two threads open about twice as fast as one,
page faults of the new memory included. The calling thread hashes the ciphertext
meanwhile (xxh3 releases the GIL too).

OpenSSL's GCM writes a segment's plaintext and then checks its tag, so the new pages hold
unauthenticated bytes while a segment is being opened. They never leave this module
unless every tag checked: on any failure the mapping is closed and the error raised.
"""

from __future__ import annotations

import contextlib
import mmap
import os
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

MAX_THREADS = 8
MIN_SEGMENTS_PER_THREAD = 4  # below that, a thread costs more than it saves


def decrypt_mapped(key: "EncryptionKey", sealed: mmap.mmap, name: str, file_id: str | None, segment_bytes: int,
                   digest: Any | None) -> mmap.mmap:
    """The plaintext of the whole sealed file mapped as ``sealed``, in new pages; ValueError if unreadable.

    ``digest`` (a hash object, or None) is fed the whole of ``sealed`` meanwhile. A failed
    tag anywhere raises (the first failing segment's error) before any page is returned.
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
    count = segments_of(plain_bytes, segment_bytes)
    opening = _Opening(opener, sealed, pages, plain_bytes, segment_bytes, count)
    threads = min(MAX_THREADS, _cores(), max(1, count // MIN_SEGMENTS_PER_THREAD))
    try:
        opening.run(threads, digest)
    except BaseException:
        with contextlib.suppress(BufferError):  # a failed segment's traceback may still view it: freed with it
            pages.close()
        raise
    return pages


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class _Opening:
    """Opens runs of segments on threads; a failure stops the runs after it and the first one is raised.

    The runs before a failed one go on, so that the error is always the first bad segment's.
    """

    def __init__(self, opener: SegmentOpener, sealed: mmap.mmap, pages: mmap.mmap, plain_bytes: int,
                 segment_bytes: int, count: int) -> None:
        self.opener, self.sealed, self.pages = opener, sealed, pages
        self.plain_bytes, self.segment_bytes, self.count = plain_bytes, segment_bytes, count
        self.errors: dict[int, BaseException] = {}  # first segment of the failed run -> its error
        self.failed_run = count  # the first segment of the earliest run that failed (count: none)

    def run(self, threads: int, digest: Any | None) -> None:
        bounds = [self.count * part // threads for part in range(threads + 1)]
        runs = list(zip(bounds, bounds[1:]))
        workers = [threading.Thread(target=self._open_run, args=run, name="runpoint-decrypt", daemon=True)
                   for run in runs[1:]]
        for worker in workers:
            worker.start()
        try:
            if digest is not None and workers:  # hashed here while the other threads decrypt
                with memoryview(self.sealed) as view:
                    digest.update(view)
            self._open_run(*runs[0])
        finally:
            for worker in workers:
                worker.join()
        if self.errors:
            raise self.errors[min(self.errors)]
        if digest is not None and not workers:
            with memoryview(self.sealed) as view:
                digest.update(view)

    def _open_run(self, first: int, stop: int) -> None:
        try:
            with memoryview(self.sealed) as sealed, memoryview(self.pages) as pages:
                for index in range(first, stop):
                    if self.failed_run < first:
                        return
                    start = index * self.segment_bytes
                    length = min(self.segment_bytes, self.plain_bytes - start)
                    at = HEADER_BYTES + index * (self.segment_bytes + TAG_BYTES)
                    self.opener.open(index, index == self.count - 1, sealed[at:at + length + TAG_BYTES],
                                     pages[start:start + length])
        except BaseException as exc:
            self.errors[first] = exc
            self.failed_run = min(self.failed_run, first)  # (a race only delays a stop)
