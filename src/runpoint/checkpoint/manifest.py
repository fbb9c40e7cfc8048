"""A checkpoint's manifest: moved to :mod:`runpoint.artifacts.manifest` (the server's client reads it too).

This module keeps the old import path working.
"""

from ..artifacts.manifest import (  # noqa: F401
    MANIFEST_NAME,
    CheckpointInfo,
    FileEntry,
    Manifest,
    checkpoint_name,
    parse_step,
)
