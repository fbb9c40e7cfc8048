"""``EncryptionKey``: the 256-bit key that encrypted checkpoints are sealed with.

A key comes from an environment variable, a key file, raw bytes, or a callable (a KMS
client, a secrets manager). Text forms are base64 (standard or URL-safe) or hex of 32
bytes; a key file may also hold the 32 raw bytes. The key never appears in a repr, an
error message or a manifest: what identifies it is its **key id**, a fingerprint derived
with HKDF-SHA256 (16 hex characters), which manifests record and errors name.

Every secret used on disk is derived from the key with HKDF-SHA256 under its own label
(the per-file segment keys, the manifest's MAC key), so no two uses share key material.

Example::

    key = rp.EncryptionKey.from_env("RUNPOINT_CKPT_KEY")   # export RUNPOINT_CKPT_KEY=$(runpoint ckpt keygen)
    ckpt = rp.CheckpointManager(run, keep_last=3, encrypt=key)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import stat
import threading
from typing import Callable

from ..errors import InvalidArgumentError

KEY_BYTES = 32
DEFAULT_ENV = "RUNPOINT_CKPT_KEY"
_KEY_ID_LABEL = b"runpoint checkpoint key id v1"
MAC_LABEL = b"runpoint checkpoint manifest mac v1"


def hkdf_sha256(key: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """HKDF (RFC 5869) with SHA-256: a subkey of ``key`` for the purpose ``info``."""
    pseudo_random = hmac.new(salt or bytes(32), key, hashlib.sha256).digest()
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(pseudo_random, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


def key_id_of(material: bytes) -> str:
    """The fingerprint of a key: 16 hex characters that reveal nothing of the key."""
    return hkdf_sha256(material, _KEY_ID_LABEL, 8).hex()


def parse_key_text(text: str | bytes, source: str) -> bytes:
    """32 key bytes from base64 or hex text; InvalidArgumentError naming ``source`` (never the value)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidArgumentError("key", f"{source} is not base64 or hex text") from None
    cleaned = "".join(text.split())
    if len(cleaned) == 2 * KEY_BYTES and all(c in "0123456789abcdefABCDEF" for c in cleaned):
        return bytes.fromhex(cleaned)
    try:
        decoded = base64.b64decode(cleaned.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    if decoded is None or len(decoded) != KEY_BYTES:
        got = "it is empty" if not cleaned else "it is neither" if decoded is None else f"it decodes to {len(decoded)} bytes"
        raise InvalidArgumentError(
            "key", f"{source} is not a key: a key is base64 (44 characters) or hex (64) of {KEY_BYTES} bytes, "
                   f"and {got}; make one with `runpoint ckpt keygen`")
    return decoded


class EncryptionKey:
    """A 256-bit checkpoint encryption key; build it with one of the ``from_*`` constructors.

    Example::

        key = rp.EncryptionKey.from_env("RUNPOINT_CKPT_KEY")
        key = rp.EncryptionKey.from_file("~/.config/runpoint/ckpt.key")   # chmod 600
        key = rp.EncryptionKey.from_callable(lambda: kms.decrypt(blob))   # fetched once, on first use
        print(key.key_id)                                                 # safe to log
    """

    def __init__(self, material: bytes | None = None, *, source: str = "bytes",
                 fetch: Callable[[], bytes] | None = None) -> None:
        if (material is None) == (fetch is None):
            raise InvalidArgumentError("key", "give the key bytes or a callable that returns them")
        if material is not None:
            material = _checked_bytes(material, source)
        self._material = material
        self._fetch = fetch
        self._lock = threading.Lock()
        self.source = source

    @classmethod
    def from_bytes(cls, material: bytes) -> "EncryptionKey":
        """A key from its 32 raw bytes."""
        return cls(material, source="bytes")

    @classmethod
    def from_env(cls, variable: str = DEFAULT_ENV) -> "EncryptionKey":
        """The key in environment variable ``variable``, as base64 or hex text."""
        text = os.environ.get(variable)
        if text is None:
            raise InvalidArgumentError(
                "key", f"the environment variable {variable} is not set; set it to a key "
                       f"(`export {variable}=$(runpoint ckpt keygen)`, and keep the key somewhere safe)")
        return cls(parse_key_text(text, f"${variable}"), source=f"${variable}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "EncryptionKey":
        """The key in a file (base64, hex, or 32 raw bytes), readable by its owner only.

        A file that its group or others may read or write is refused: ``chmod 600`` it.
        """
        where = os.path.expanduser(os.fspath(path))
        try:
            with open(where, "rb") as handle:
                mode = os.fstat(handle.fileno()).st_mode
                if not stat.S_ISREG(mode):
                    raise InvalidArgumentError("key_file", f"{where} is not a regular file")
                if mode & 0o077:
                    raise InvalidArgumentError(
                        "key_file", f"{where} is accessible to its group or others (mode {stat.S_IMODE(mode):o}); "
                                    f"a key file must be private: chmod 600 {where}")
                data = handle.read(4096)
        except FileNotFoundError:
            raise InvalidArgumentError("key_file", f"{where} does not exist") from None
        except IsADirectoryError:
            raise InvalidArgumentError("key_file", f"{where} is a directory, not a key file") from None
        except PermissionError:
            raise InvalidArgumentError("key_file", f"{where} cannot be read (permission denied)") from None
        material = data if len(data) == KEY_BYTES else parse_key_text(data, f"key file {where}")
        return cls(material, source=f"file {where}")

    @classmethod
    def from_callable(cls, fetch: Callable[[], bytes]) -> "EncryptionKey":
        """A key that ``fetch()`` returns (32 bytes), called once, when the key is first needed."""
        if not callable(fetch):
            raise InvalidArgumentError("key", f"from_callable needs a callable, got {type(fetch).__qualname__}")
        return cls(fetch=fetch, source=f"callable {getattr(fetch, '__qualname__', type(fetch).__qualname__)}")

    @staticmethod
    def generate() -> str:
        """A new random key, as base64 text for an environment variable or a key file."""
        return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")

    def material(self) -> bytes:
        """The key bytes (fetched on first use for a callable key)."""
        with self._lock:
            if self._material is None:
                assert self._fetch is not None
                try:
                    fetched = self._fetch()
                except Exception as exc:
                    raise InvalidArgumentError("key", f"the key {self.source} raised {type(exc).__name__}: {exc}") from exc
                self._material = _checked_bytes(fetched, self.source)
            return self._material

    @property
    def key_id(self) -> str:
        """The key's fingerprint, as manifests record it."""
        return key_id_of(self.material())

    def subkey(self, label: bytes, salt: bytes = b"") -> bytes:
        """A 32-byte key for one purpose, derived with HKDF-SHA256."""
        return hkdf_sha256(self.material(), label, 32, salt)

    def __repr__(self) -> str:
        known = self._material is not None
        return f"EncryptionKey(key_id={self.key_id if known else '(not fetched yet)'}, source={self.source})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EncryptionKey) and hmac.compare_digest(self.material(), other.material())

    def __hash__(self) -> int:
        return hash(self.key_id)

    def __copy__(self) -> "EncryptionKey":
        return self

    def __deepcopy__(self, memo: object) -> "EncryptionKey":
        return self

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("an EncryptionKey is not pickled (that would write the key out); pass it to each process")


def _checked_bytes(material: object, source: str) -> bytes:
    if not isinstance(material, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError("key", f"the key {source} is a {type(material).__qualname__}, not bytes")
    material = bytes(material)
    if len(material) != KEY_BYTES:
        raise InvalidArgumentError("key", f"the key {source} is {len(material)} bytes; AES-256 needs {KEY_BYTES}")
    return material
