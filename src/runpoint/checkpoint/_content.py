"""What ``verify`` checks in a file beyond its hash, and the sizes a manifest may claim.

A compressed file must inflate to exactly the size its manifest gives, never further; a
tensors file must start with a readable safetensors header; an encrypted file is
decrypted segment by segment with the key, or without one has its header checked.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..artifacts.manifest import FileEntry, Manifest
from ..errors import CheckpointCorruptError
from . import _safetensors
from ._sealing import HEADER_BYTES, check_header, open_sealed, plain_size
from ._streams import Bounded, HashingReader

if TYPE_CHECKING:
    from .keys import EncryptionKey

TENSORS_FILE = "tensors.safetensors"  # (io.py exports it)
# zstd's densest block is RLE: 4 bytes for 128 KiB, so no frame inflates more than this
ZSTD_MAX_RATIO = 32768

OUT_OF_TIME = "not verified: the check ran out of time"


def check_content(manifest: Manifest, name: str, entry: FileEntry, hashing: HashingReader,
                  deadline: float | None, key: "EncryptionKey | None" = None) -> str | None:
    """Read a file through ``hashing`` to its end; what is wrong with its content, or None.

    Beyond the hash: a compressed file must inflate to exactly the size the manifest says
    (never further), and a tensors file must start with a readable safetensors header. An
    encrypted file is decrypted (each segment's tag checked) when ``key`` is given; without
    one only its header is checked against the manifest.
    """
    decoded: Any = hashing
    bounded = opened = None
    try:
        if manifest.encryption is not None:
            if key is None:
                return check_header(hashing.read(HEADER_BYTES), name, entry.file_id,
                                    manifest.encryption.segment_bytes) or _drain(hashing, deadline)
            decoded = opened = open_sealed(key, hashing, manifest, name, entry)
        if manifest.compression == "zstd":
            import zstandard

            reader = zstandard.ZstdDecompressor().stream_reader(decoded, read_across_frames=True)
            decoded = bounded = Bounded(reader, uncompressed_size(manifest, name, entry, ""))
        if name.rsplit("/", 1)[-1].startswith(TENSORS_FILE):
            _safetensors.check_header(decoded, uncompressed_size(manifest, name, entry, ""))
        for stream in (bounded, opened, hashing):  # (then the bytes after a compressed file's last frame)
            if stream is not None and _drain(stream, deadline) is not None:
                return OUT_OF_TIME
    except ValueError as exc:
        _drain(hashing, deadline)  # so that a wrong size or hash is what is reported, when it is the cause
        return f"unreadable: {exc}"
    except OSError as exc:
        return f"unreadable: {exc}"
    except Exception as exc:
        if type(exc).__module__.startswith("zstandard"):
            return f"unreadable: {exc}"
        raise
    if bounded is not None and bounded.left:
        return f"decompresses to {bounded.limit - bounded.left} bytes, the manifest says {bounded.limit}"
    return None


def _drain(stream: Any, deadline: float | None) -> str | None:
    """Read ``stream`` to its end; OUT_OF_TIME if ``deadline`` passes first."""
    buffer = bytearray(8 << 20)  # one buffer, refilled: 2-3x faster than a new bytes object a read
    while stream.readinto(buffer):
        if deadline is not None and time.monotonic() > deadline:
            return OUT_OF_TIME
    return None


def uncompressed_size(manifest: Manifest, name: str, entry: FileEntry, where: str) -> int:
    """The size the file's bytes decode to; CheckpointCorruptError if the manifest's claim is impossible."""
    if manifest.compression is None:
        if manifest.encryption is None:
            return entry.bytes
        try:
            return plain_size(entry.bytes, manifest.encryption.segment_bytes)
        except ValueError as exc:
            raise CheckpointCorruptError(where, name, str(exc)) from None
    if manifest.compression != "zstd":
        raise CheckpointCorruptError(where, name, f"unknown compression {manifest.compression!r}")
    if entry.raw_bytes is None:
        raise CheckpointCorruptError(where, name, "compressed, but the manifest gives no uncompressed size")
    if entry.raw_bytes > entry.bytes * ZSTD_MAX_RATIO:
        raise CheckpointCorruptError(where, name, f"the manifest says {entry.raw_bytes} bytes uncompressed, "
                                                  f"more than zstd can inflate {entry.bytes} bytes to")
    return entry.raw_bytes
