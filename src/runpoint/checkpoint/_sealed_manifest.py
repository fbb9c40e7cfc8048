"""An encrypted checkpoint's manifest: sealing it with a MAC, and checking it and the key before a read.

The manifest stays plain JSON (listing, retention and keyless ``verify`` read it); what
protects it is HMAC-SHA256 under a subkey of the checkpoint key, over the canonical bytes
of everything in it but the MAC (:func:`~runpoint.artifacts.manifest.signed_bytes`). Since
the manifest lists each file's size, ciphertext hash and file id, an authentic manifest
vouches for the exact files of its checkpoint.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import replace

from ..artifacts.manifest import MANIFEST_NAME, Encryption, Manifest, signed_bytes
from ..errors import CheckpointCorruptError, CheckpointKeyError
from ._sealing import CIPHER, SEGMENT_BYTES
from .keys import MAC_LABEL, EncryptionKey

logger = logging.getLogger("runpoint.checkpoint")


def _mac(key: EncryptionKey, signed: bytes) -> str:
    return hmac.new(key.subkey(MAC_LABEL), signed, hashlib.sha256).hexdigest()


def seal_manifest(manifest: Manifest, key: EncryptionKey | None, segment_bytes: int = SEGMENT_BYTES) -> Manifest:
    """``manifest`` with its ``encryption`` section and MAC (unchanged without a key)."""
    if key is None:
        return manifest
    sealing = Encryption(CIPHER, key.key_id, segment_bytes)
    mac = _mac(key, signed_bytes(replace(manifest, encryption=sealing).to_data()))
    return replace(manifest, encryption=replace(sealing, mac=mac))


def check_manifest(manifest: Manifest, key: EncryptionKey | None, where: str) -> None:
    """Before reading an encrypted checkpoint: the right key was given and the manifest is authentic.

    :class:`CheckpointKeyError` without a key or with another key (naming both key ids),
    :class:`CheckpointCorruptError` for a manifest that was altered. An unencrypted
    checkpoint needs no key; read with one, it is read as it is (a directory may hold both).
    """
    sealed = manifest.encryption
    if sealed is None:
        if key is not None:
            logger.info("runpoint: %s is not encrypted; read without its key", where)
        return
    if key is None:
        raise CheckpointKeyError(where, sealed.key_id, None)
    if key.key_id != sealed.key_id:
        raise CheckpointKeyError(where, sealed.key_id, key.key_id, key.source)
    if sealed.cipher != CIPHER:
        raise CheckpointCorruptError(where, MANIFEST_NAME, f"unknown cipher {sealed.cipher!r}")
    signed = manifest.signed if manifest.signed is not None else signed_bytes(manifest.to_data())
    if not hmac.compare_digest(_mac(key, signed), sealed.mac):
        raise CheckpointCorruptError(where, MANIFEST_NAME, "fails authentication: the manifest was altered")
