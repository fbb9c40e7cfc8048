"""``rp.load_model``: a registered version's weights, through the verified restore path.

Example::

    state = {"model": model}
    rp.load_model("digits@champion", state)      # into the model, in place
    weights = rp.load_model("digits:3")["model"]  # or as plain values
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, MutableMapping

from ..checkpoint.pinned import load_pinned
from ..query import open_root
from ..store import ModelVersionRecord
from .fetch import local_checkpoint
from .resolve import checkpoint_location, registry_of, resolve_version

if TYPE_CHECKING:
    from ..checkpoint.keys import EncryptionKey


def model_version(ref: str, *, root: str | os.PathLike[str] | None = None) -> ModelVersionRecord:
    """The version ``ref`` names (``NAME``, ``NAME:V`` or ``NAME@ALIAS``) in the registry at ``root``.

    Example::

        v = rp.model_version("digits@champion")
        print(v.ref, v.run_id, v.step, v.lineage["metric_value"])
    """
    store = open_root(root)
    try:
        return resolve_version(registry_of(store), ref)
    finally:
        store.close()


def load_model(
    ref: str,
    state: MutableMapping[str, Any] | None = None,
    *,
    root: str | os.PathLike[str] | None = None,
    strict: bool = True,
    map_location: Any = None,
    key: "EncryptionKey | None" = None,
) -> Any:
    """Load the weights of a registered model version, verified.

    ``ref`` is ``NAME@ALIAS`` (``"digits@champion"``), ``NAME:VERSION`` (``"digits:3"``) or
    ``NAME`` (its latest version). The checkpoint's manifest must still have the hash
    recorded at registration (else CheckpointCorruptError: the files are not the
    registered ones) and every file must match the manifest.

    With ``state`` (``{"model": model, "optimizer": opt}``) the checkpoint is loaded into
    those objects in place, as ``CheckpointManager.restore`` does (``strict``: keys and
    shapes must match), and ``state`` is returned; without, the checkpoint's state comes
    back as plain values, as ``rp.load_checkpoint`` returns it. ``key`` (an
    ``rp.EncryptionKey``) decrypts an encrypted checkpoint.

    Example::

        model = Net()
        rp.load_model("digits@champion", {"model": model})
        model.eval()
    """
    store = open_root(root)
    try:
        version = resolve_version(registry_of(store), ref)
        with local_checkpoint(store, checkpoint_location(store, version)) as path:
            return load_pinned(path, version.manifest_hash, state, strict=strict, map_location=map_location, key=key)
    finally:
        store.close()
