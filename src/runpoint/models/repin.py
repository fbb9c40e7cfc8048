"""Keeping registered model versions loadable when ``runpoint ckpt rekey`` rewrites their checkpoints.

A model version pins the digest of its checkpoint's manifest, and rekeying writes a new
manifest (new file ids, sizes, hashes, key id). So when a checkpoint that a version names
is rekeyed, the version is re-pinned to the new digest once the new checkpoint is
committed and verified: a compare-and-set on the old digest (:meth:`repin_version`),
recorded in the version's lineage (``lineage["repinned"]``).

Which registry: a checkpoints directory inside a runpoint root (a run's ``checkpoints/``)
is looked up in that root's registry, found by walking up from the directory to the
root's database; the versions are those of the run the manifest names, at its step,
whose checkpoint is this one. A directory in no root has no registry to consult and is
rekeyed as it is. A root whose registry cannot be opened refuses the rekey before any
checkpoint is changed.

Example::

    pins = RegistryPins.for_location("runs/vision/r1/checkpoints")   # None outside a root
    rekey("runs/vision/r1/checkpoints", old_key, new_key, pins=pins)
"""

from __future__ import annotations

import os
from pathlib import Path

from ..artifacts.manifest import Manifest
from ..artifacts.paths import DB_NAME
from ..checkpoint.pinned import manifest_digest
from ..errors import CheckpointNotFoundError, PinConflictError, RunpointError
from ..query import open_root
from ..store import ModelRegistry, ModelVersionRecord, Store
from .register import current_user
from .resolve import checkpoint_location, registry_of


class RegistryPins:
    """The model versions of one root's registry that pin checkpoints, and their re-pinning."""

    def __init__(self, store: Store, registry: ModelRegistry | None = None) -> None:
        self.store = store
        self.registry = registry if registry is not None else registry_of(store)

    @classmethod
    def for_location(cls, location: str | os.PathLike[str]) -> "RegistryPins | None":
        """The pins of the root ``location`` lies in; None when it is in no root (a bare directory).

        A root whose store or registry cannot be opened raises (StoreError): its checkpoints
        cannot be proven unregistered.
        """
        if "://" in os.fspath(location):
            return None
        here = Path(location).expanduser().resolve()
        root = next((parent for parent in (here, *here.parents) if (parent / DB_NAME).is_file()), None)
        return None if root is None else cls(open_root(root))

    def close(self) -> None:
        self.store.close()

    def pinning(self, location: str, manifest: Manifest) -> list[ModelVersionRecord]:
        """The live versions that pin the checkpoint at ``location`` as its ``manifest`` is now."""
        if manifest.run_id is None:
            return []
        digest = manifest_digest(manifest)
        here = Path(location).resolve()
        found = []
        for version in self.registry.versions_of_run(manifest.run_id):
            if version.step != manifest.step or version.manifest_hash != digest:
                continue
            try:
                if Path(checkpoint_location(self.store, version)).resolve() == here:
                    found.append(version)
            except (CheckpointNotFoundError, OSError):
                continue
        return found

    def repin(self, versions: list[ModelVersionRecord], old: Manifest, new: Manifest) -> tuple[list[str], dict[str, str]]:
        """Re-pin ``versions`` from ``old``'s digest to ``new``'s: (refs re-pinned, ref -> why not)."""
        old_hash, new_hash = manifest_digest(old), manifest_digest(new)
        done, failed = [], {}
        for version in versions:
            try:
                self.registry.repin_version(version.name, version.version, old_hash=old_hash, new_hash=new_hash,
                                            by=current_user(), why="rekey")
            except PinConflictError as exc:
                failed[version.ref] = str(exc)
            except RunpointError as exc:  # deleted meanwhile, the server refused: said, not fatal to the rest
                failed[version.ref] = f"not re-pinned: {exc}"
            else:
                done.append(version.ref)
        return done, failed
