"""Streaming authenticated encryption of one checkpoint file: segmented AES-256-GCM.

One-shot GCM over a multi-GiB file would either need the whole file in memory or hand
out plaintext before its tag is checked. So a file is cut into fixed-size segments, each
sealed on its own with AES-256-GCM (the construction of Tink's streaming AEAD), and memory
stays at two segment buffers whatever the file's size.

Format ``aes-256-gcm-segmented-v1`` (all integers big-endian)::

    header   magic "RPSEAL\\x00\\x01" (8) | segment size S (4) | salt (16) | nonce prefix (7)
    segment  AES-256-GCM(file key, nonce_i, plaintext_i, aad) = ciphertext_i | tag_i (16)
             ... one per S bytes of plaintext; the last holds 1..S bytes (0 for an empty file)

    file key = HKDF-SHA256(checkpoint key, salt = salt, info = "runpoint checkpoint segments v1")
    nonce_i  = nonce prefix (7) | i (4) | 0x01 for the last segment, else 0x00 (1)
    aad      = header | the file's name in the checkpoint (UTF-8)

What that detects, each as a failed tag: a flipped bit anywhere (header included, it is
in every segment's AAD); segments reordered, dropped or repeated (``i`` is in the nonce);
a file cut at a segment boundary (its new last segment was sealed as not last); a file
renamed inside its checkpoint (the name is in the AAD). A file moved between checkpoints
is a valid file under the same key, so the salt doubles as the file's identity: the
authenticated manifest lists each file's salt (``file_id``) and reading checks it first.
The random 16-byte salt gives every file its own key, so the 2^32-messages-per-key bound
of random GCM nonces applies per file, never across a directory.
"""

from __future__ import annotations

import secrets
import struct
from typing import TYPE_CHECKING, Any

from .._util.optional import require
from .keys import EncryptionKey

if TYPE_CHECKING:
    from ..artifacts.manifest import FileEntry, Manifest

CIPHER = "aes-256-gcm-segmented-v1"
MAGIC = b"RPSEAL\x00\x01"
SEGMENT_BYTES = 1 << 20  # 1 MiB: GCM's speed is flat from here up; two buffers is all the memory used
TAG_BYTES = 16
SALT_BYTES = 16
PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + 4 + SALT_BYTES + PREFIX_BYTES
MAX_SEGMENT_BYTES = 64 << 20
_SEGMENT_LABEL = b"runpoint checkpoint segments v1"


def _aesgcm() -> Any:
    return require("cryptography.hazmat.primitives.ciphers.aead", "encrypt", "encrypted checkpoints").AESGCM


def segments_of(plain_bytes: int, segment_bytes: int) -> int:
    return max(1, -(-plain_bytes // segment_bytes))


def sealed_size(plain_bytes: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    """The size of the sealed file of ``plain_bytes`` of plaintext."""
    return HEADER_BYTES + plain_bytes + TAG_BYTES * segments_of(plain_bytes, segment_bytes)


def plain_size(sealed_bytes: int, segment_bytes: int) -> int:
    """The plaintext size a sealed file of ``sealed_bytes`` holds; ValueError if no such file exists."""
    if not 0 < segment_bytes <= MAX_SEGMENT_BYTES:
        raise ValueError(f"segment size {segment_bytes} is not one runpoint writes")
    body = sealed_bytes - HEADER_BYTES
    count = -(-body // (segment_bytes + TAG_BYTES)) if body > 0 else 0
    plain = body - TAG_BYTES * count
    if count < 1 or plain < 0 or sealed_size(plain, segment_bytes) != sealed_bytes:
        raise ValueError(f"{sealed_bytes} bytes is not the size of a sealed file of {segment_bytes}-byte segments")
    return plain


def _header(segment_bytes: int, salt: bytes, prefix: bytes) -> bytes:
    return MAGIC + struct.pack(">I", segment_bytes) + salt + prefix


def _file_aead(key: EncryptionKey, salt: bytes) -> Any:
    return _aesgcm()(key.subkey(_SEGMENT_LABEL, salt))


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + struct.pack(">I", index) + (b"\x01" if final else b"\x00")


class SealingWriter:
    """Encrypts the bytes written to it into ``out`` (a stream with ``write``), segment by segment.

    A full segment is sealed only once more bytes arrive, since the last segment is sealed
    differently and a file may end exactly at a segment boundary; :meth:`close` seals the
    last. Whole segments are encrypted straight from the caller's buffer; only the tail of
    each write (at most one segment) is copied.
    """

    def __init__(self, key: EncryptionKey, out: Any, name: str, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.out = out
        self.segment_bytes = segment_bytes
        salt, self._prefix = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(PREFIX_BYTES)
        self.file_id = salt.hex()
        header = _header(segment_bytes, salt, self._prefix)
        self._aad = header + name.encode("utf-8")
        self._aead = _file_aead(key, salt)
        self._sealed = bytearray(segment_bytes + TAG_BYTES)
        self._pending = bytearray(segment_bytes)
        self._filled = 0
        self._index = 0
        self._closed = False
        out.write(header)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size, position, segment = len(view), 0, self.segment_bytes
        if not size:
            return 0
        if self._filled:
            if self._filled == segment:
                self._seal(memoryview(self._pending), final=False)
                self._filled = 0
            else:
                position = min(segment - self._filled, size)
                self._pending[self._filled:self._filled + position] = view[:position]
                self._filled += position
                if position == size:
                    return size
                self._seal(memoryview(self._pending), final=False)
                self._filled = 0
        while size - position > segment:
            self._seal(view[position:position + segment], final=False)
            position += segment
        rest = size - position
        self._pending[:rest] = view[position:]
        self._filled = rest
        return size

    def _seal(self, plain: memoryview, final: bool) -> None:
        nonce = _nonce(self._prefix, self._index, final)
        self._index += 1
        if self._index >= 1 << 32:
            raise ValueError("a sealed file holds at most 2^32 segments")
        out = memoryview(self._sealed)[:len(plain) + TAG_BYTES]
        if hasattr(self._aead, "encrypt_into"):  # cryptography >= 47: no allocation per segment
            self._aead.encrypt_into(nonce, plain, self._aad, out)
            self.out.write(out)
        else:
            self.out.write(self._aead.encrypt(nonce, bytes(plain), self._aad))

    def close(self) -> None:
        """Seal the last segment. The file is incomplete (and will not open) without it."""
        if not self._closed:
            self._closed = True
            self._seal(memoryview(self._pending)[:self._filled], final=True)


def check_header(header: bytes, name: str, file_id: str | None, segment_bytes: int) -> str | None:
    """What is wrong with a sealed file's header against its manifest entry, or None.

    Needs no key: ``runpoint ckpt verify`` without a key checks this, the size and the hash.
    """
    if len(header) < HEADER_BYTES:
        return "too short for an encrypted file's header"
    if header[:len(MAGIC)] != MAGIC:
        return "not a runpoint encrypted file (bad magic)"
    (size,) = struct.unpack(">I", header[len(MAGIC):len(MAGIC) + 4])
    if size != segment_bytes:
        return f"segments of {size} bytes, the manifest says {segment_bytes}"
    salt = header[len(MAGIC) + 4:len(MAGIC) + 4 + SALT_BYTES]
    if file_id is None or salt.hex() != file_id:
        return "belongs to another checkpoint or file (its file id differs from the manifest's)"
    return None


class SegmentOpener:
    """Opens the segments of one sealed file, given its (checked) header and its name.

    :meth:`open` decrypts into the caller's buffer and then checks the tag (OpenSSL's GCM
    works that way round), so the buffer holds unauthenticated bytes until it returns:
    callers hand out nothing of a buffer that a failed :meth:`open` wrote to.
    """

    def __init__(self, key: EncryptionKey, header: bytes, name: str) -> None:
        self._prefix = header[-PREFIX_BYTES:]
        self._aad = header + name.encode("utf-8")
        self._aead = _file_aead(key, header[len(MAGIC) + 4:len(MAGIC) + 4 + SALT_BYTES])

    def open(self, index: int, final: bool, sealed: memoryview, into: memoryview) -> None:
        """Decrypt segment ``index`` (``sealed``: ciphertext and tag) into ``into``; ValueError if its tag fails."""
        nonce = _nonce(self._prefix, index, final)
        try:
            if hasattr(self._aead, "decrypt_into"):  # cryptography >= 47: no allocation per segment
                self._aead.decrypt_into(nonce, sealed, self._aad, into)
            else:
                into[:] = self._aead.decrypt(nonce, bytes(sealed), self._aad)
        except Exception as exc:
            if type(exc).__name__ != "InvalidTag":
                raise
            raise ValueError(f"segment {index} fails authentication: the file was altered, cut, or the "
                             "segments reordered") from None


class OpeningReader:
    """Decrypts a sealed file read from ``stream``; ``readinto``/``read`` give verified plaintext.

    ``sealed_bytes`` is the file's size as the (authenticated) manifest gives it, so the
    reader knows which segment is the last. Each segment is decrypted into the caller's
    buffer when the buffer takes a whole segment (restoring decrypts straight into the new
    tensors), else into a buffer of its own. Nothing of a segment is returned before its
    tag is checked; a failed tag raises ValueError naming the segment.
    """

    def __init__(self, key: EncryptionKey, stream: Any, name: str, file_id: str | None, segment_bytes: int,
                 sealed_bytes: int) -> None:
        self.stream = stream
        self.plain_bytes = plain_size(sealed_bytes, segment_bytes)
        header = _read_exactly(stream, HEADER_BYTES)
        problem = check_header(header, name, file_id, segment_bytes)
        if problem is not None:
            raise ValueError(problem)
        self.segment_bytes = segment_bytes
        self._opener = SegmentOpener(key, header, name)
        self._count = segments_of(self.plain_bytes, segment_bytes)
        self._index = 0
        self._sealed = bytearray(segment_bytes + TAG_BYTES)
        self._plain = bytearray(segment_bytes)
        self._start = self._end = 0

    def _segment_length(self) -> int:
        if self._index < self._count - 1:
            return self.segment_bytes
        return self.plain_bytes - self.segment_bytes * (self._count - 1)

    def _open_next(self, into: memoryview) -> None:
        length = self._segment_length()
        sealed = memoryview(self._sealed)[:length + TAG_BYTES]
        filled = _fill(self.stream, sealed)
        if filled != len(sealed):
            raise ValueError(f"the file ends inside segment {self._index}")
        final = self._index == self._count - 1
        self._opener.open(self._index, final, sealed, into[:length])
        self._index += 1
        if final and self.stream.read(1):
            raise ValueError("bytes after the last segment")

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        total = 0
        while total < len(view) or (self._start == self._end and self._index < self._count
                                    and self._segment_length() == 0):
            if self._start < self._end:
                count = min(self._end - self._start, len(view) - total)
                view[total:total + count] = memoryview(self._plain)[self._start:self._start + count]
                self._start += count
                total += count
            elif self._index >= self._count:
                break
            elif len(view) - total >= self._segment_length():
                length = self._segment_length()
                self._open_next(view[total:])
                total += length
            else:
                self._end, self._start = self._segment_length(), 0
                self._open_next(memoryview(self._plain))
        return total

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.plain_bytes
        buffer = bytearray(size)
        count = self.readinto(buffer)
        return bytes(buffer[:count])


def open_sealed(key: EncryptionKey | None, stream: Any, manifest: "Manifest", name: str,
                entry: "FileEntry") -> OpeningReader:
    """The plaintext of file ``name`` of an encrypted checkpoint, read from ``stream``; ValueError if unreadable."""
    if manifest.encryption is None or key is None:  # pragma: no cover - callers check the key first
        raise ValueError("not an encrypted file, or no key")
    return OpeningReader(key, stream, name, entry.file_id, manifest.encryption.segment_bytes, entry.bytes)


def _fill(stream: Any, view: memoryview) -> int:
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:]) or 0
        if not count:
            break
        filled += count
    return filled


def _read_exactly(stream: Any, count: int) -> bytes:
    buffer = bytearray(count)
    filled = _fill(stream, memoryview(buffer))
    if filled != count:
        raise ValueError(f"the file is {filled} bytes, too short for an encrypted file's header")
    return bytes(buffer)
