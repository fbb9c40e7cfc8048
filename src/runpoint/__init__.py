"""runpoint: local-first experiment tracking, checkpointing and configuration for PyTorch.

Example::

    import runpoint as rp

    cfg = rp.load_config("configs/base.yaml", profile="dev")   # or a plain dict
    with rp.init(project="digits", config=cfg) as run:
        for step in range(100):
            run.log({"train/loss": 1 / (step + 1)}, step=step)

Importing runpoint is cheap: it does not import torch, numpy or the web stack, adds no
logging handlers and probes nothing. Public names load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._util.lazy import lazy_attributes
from ._version import __version__
from .errors import (
    AliasConflictError,
    ArchiveError,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointNotFoundError,
    ConfigError,
    InvalidArgumentError,
    InvalidValueError,
    MissingDependencyError,
    ModelNotFoundError,
    RunExistsError,
    RunNotFoundError,
    RunpointError,
    SchemaVersionError,
    StoreError,
)

# name -> module that defines it, imported on first attribute access
_LAZY = {
    "CheckpointManager": ".checkpoint.manager",
    "EncryptionKey": ".checkpoint.keys",
    "load_checkpoint": ".checkpoint.load",
    "init": ".run.start",
    "load_config": ".config.load",
    "ProjectConfig": ".config.schema",
    "Run": ".run.run",
    "RunStatus": ".store.base",
    "Histogram": ".media.types",
    "Image": ".media.types",
    "Table": ".media.types",
    "Text": ".media.types",
    "register_model": ".models.register",
    "load_model": ".models.load",
    "model_version": ".models.load",
    "ModelVersion": ".models",
}

# subpackages reachable as attributes without importing them first (rp.config.from_argv)
_SUBPACKAGES = {"config"}

__all__ = [
    "AliasConflictError",
    "ArchiveError",
    "CheckpointCorruptError",
    "CheckpointError",
    "CheckpointManager",
    "CheckpointNotFoundError",
    "ConfigError",
    "EncryptionKey",
    "Histogram",
    "Image",
    "InvalidArgumentError",
    "InvalidValueError",
    "MissingDependencyError",
    "ModelNotFoundError",
    "ModelVersion",
    "ProjectConfig",
    "Run",
    "RunExistsError",
    "RunNotFoundError",
    "RunStatus",
    "RunpointError",
    "SchemaVersionError",
    "StoreError",
    "Table",
    "Text",
    "init",
    "load_checkpoint",
    "load_config",
    "load_model",
    "model_version",
    "register_model",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBPACKAGES, __all__)


if TYPE_CHECKING:
    from . import config
    from .checkpoint.keys import EncryptionKey
    from .checkpoint.load import load_checkpoint
    from .checkpoint.manager import CheckpointManager
    from .config.load import load_config
    from .config.schema import ProjectConfig
    from .media.types import Histogram, Image, Table, Text
    from .models import ModelVersion
    from .models.load import load_model, model_version
    from .models.register import register_model
    from .run.run import Run
    from .run.start import init
    from .store.base import RunStatus
