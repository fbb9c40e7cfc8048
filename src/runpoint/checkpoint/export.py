"""``CheckpointManager.export``: a model's weights alone, as one safetensors file.

For deployment: no optimizer, no RNG, no runpoint needed to read it. The file is written
under a temporary name and renamed into place (locally), so a reader never sees half.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any, Mapping

from ..artifacts.manifest import Manifest
from ..artifacts.storage import Artifacts, open_artifacts
from ..errors import InvalidArgumentError
from . import _safetensors
from ._state import Stateful, TensorRef

if TYPE_CHECKING:
    from .directory import CheckpointDirectory
    from .io import CheckpointIO

logger = logging.getLogger("runpoint")


def weights_of(state: dict[str, Any], tensors: dict[str, Any], manifest: Manifest, key: str | None,
               where: str) -> dict[str, Any]:
    """The tensors of the module saved under ``key`` (default: "model", or the only module)."""
    if key is None:
        modules = [k for k, kind in manifest.keys.items() if kind == "module"]
        key = "model" if "model" in state else (modules[0] if len(modules) == 1 else None)
        if key is None:
            raise InvalidArgumentError("key", f"which part of {where} is the model? It has {', '.join(map(repr, state))}")
    if key not in state:
        raise InvalidArgumentError("key", f"{where} has no {key!r}; it has {', '.join(map(repr, state))}")
    value = state[key]
    if isinstance(value, Stateful):
        value = value.state
    if not isinstance(value, dict):
        raise InvalidArgumentError("key", f"{key!r} in {where} is not a module's state dict")
    weights = {str(name): tensors[ref.name] for name, ref in value.items() if isinstance(ref, TensorRef)}
    skipped = [str(name) for name, ref in value.items() if not isinstance(ref, TensorRef)]
    if skipped:
        logger.warning("runpoint: export skips non-tensor entries of %r: %s", key, ", ".join(skipped))
    if not weights:
        raise InvalidArgumentError("key", f"{key!r} in {where} holds no tensors")
    return weights


def checkpoint_weights(storage: Artifacts, name: str, io: "CheckpointIO", key: str | None) -> tuple[dict[str, Any], Manifest]:
    """(the weights of the module under ``key``, the manifest) of checkpoint ``name``, single-process or sharded."""
    from .directory import read_manifest
    from .load import read_checkpoint

    where = storage.display(name)
    manifest = read_manifest(storage, name)
    if manifest.is_sharded:
        from ._sharded_restore import load_full

        full = load_full(storage, name, manifest)
        return sharded_weights(full, manifest, key, where), manifest
    manifest, document, tensors = read_checkpoint(storage, name, io)
    return weights_of(document["state"], tensors, manifest, key, where), manifest


def sharded_weights(full: dict[str, Any], manifest: Manifest, key: str | None, where: str) -> dict[str, Any]:
    """The tensors of the module under ``key`` in a sharded checkpoint loaded whole."""
    modules = [k for k, kind in manifest.keys.items() if kind == "module"]
    if key is None:
        key = "model" if "model" in full else (modules[0] if len(modules) == 1 else None)
        if key is None:
            raise InvalidArgumentError("key", f"which part of {where} is the model? It has {', '.join(map(repr, full))}")
    if key not in full or not isinstance(full[key], dict):
        raise InvalidArgumentError("key", f"{where} has no module {key!r}; it has {', '.join(map(repr, full))}")
    weights = {str(name): value for name, value in full[key].items() if hasattr(value, "shape")}
    if not weights:
        raise InvalidArgumentError("key", f"{key!r} in {where} holds no tensors")
    return weights


def write_weights(path: str | os.PathLike[str], weights: dict[str, Any], metadata: dict[str, str],
                  storage_options: Mapping[str, Any] | None = None) -> str:
    """Write ``weights`` to ``path`` (a local path or a URL: fsspec gets ``storage_options``); returns where it went."""
    target = os.fspath(path)
    if "://" in target:
        parent, _, name = target.rstrip("/").rpartition("/")
    else:
        parent, name = os.path.split(os.path.abspath(target))
    storage = open_artifacts(parent, storage_options)
    temporary = f".{name}.{os.getpid()}.tmp" if storage.is_local else name
    sink = storage.open_write(temporary)
    try:
        _safetensors.write(sink, weights, metadata)
        sink.close()
        if storage.is_local:
            storage.rename(temporary, name)
            storage.sync_root()
    except BaseException:
        sink.abort()
        storage.remove_file(temporary)
        raise
    return storage.display(name)


def export_checkpoint(storage: Artifacts, directory: "CheckpointDirectory", io: "CheckpointIO", which: Any,
                      monitor: str | None, mode: Any, path: str | os.PathLike[str], key: str | None,
                      storage_options: Mapping[str, Any] | None) -> str:
    """``CheckpointManager.export``: the weights of the checkpoint ``which`` picks, written to ``path``."""
    from ..errors import CheckpointNotFoundError

    if which == "best" and monitor is None:
        raise InvalidArgumentError("which", "the manager has no monitor, so no best checkpoint; pass which='latest'")
    directory.refresh()
    info = directory.pick(which, monitor, mode)
    if info is None:
        raise CheckpointNotFoundError(storage.display())
    weights, _ = checkpoint_weights(storage, info.name, io, key)
    metadata = {"format": "pt", "step": str(info.step), "source": info.path}
    return write_weights(path, weights, metadata, storage_options)
