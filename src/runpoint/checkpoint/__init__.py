"""Checkpoints: atomic, verified, retained, with exact resume and async saves.

Most code needs only :class:`CheckpointManager` and :func:`load_checkpoint`, which
``runpoint`` exports. The rest is here for those who want more control: retention and
trigger policies, the IO protocol, manifests, data-order helpers for exact resume, and
verification.

Example::

    import runpoint as rp

    with rp.init(project="digits", resume=resume) as run:
        ckpt = rp.CheckpointManager(run, keep_last=3, keep_best=1, monitor="val/loss")
        start = ckpt.restore(state) or 0        # the step after the checkpoint's, or 0
        for step in range(start, total):
            ...
"""

from ..artifacts.manifest import CheckpointInfo, FileEntry, Manifest
from .data import ResumableSampler
from .io import CheckpointIO, Payload, SafetensorsIO
from .keys import EncryptionKey
from .load import VerifyResult, load_checkpoint, verify_checkpoint
from .manager import CheckpointManager
from .options import CheckpointKeywords, CheckpointOptions
from .policy import (
    AnyOf,
    BestN,
    EveryNSteps,
    KeepAll,
    LatestN,
    RetentionPolicy,
    SaveEveryNSeconds,
    SaveEveryNSteps,
    SaveTrigger,
    retention_from_keywords,
)
from .process import CheckpointProcess, LocalProcess

__all__ = [
    "AnyOf",
    "BestN",
    "CheckpointIO",
    "CheckpointInfo",
    "CheckpointKeywords",
    "CheckpointManager",
    "CheckpointOptions",
    "CheckpointProcess",
    "EncryptionKey",
    "EveryNSteps",
    "FileEntry",
    "KeepAll",
    "LatestN",
    "LocalProcess",
    "Manifest",
    "Payload",
    "ResumableSampler",
    "RetentionPolicy",
    "SafetensorsIO",
    "SaveEveryNSeconds",
    "SaveEveryNSteps",
    "SaveTrigger",
    "VerifyResult",
    "load_checkpoint",
    "retention_from_keywords",
    "verify_checkpoint",
]
