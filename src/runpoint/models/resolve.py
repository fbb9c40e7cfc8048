"""From a model reference to its version record and its checkpoint's place.

Example::

    store, registry = open_registry(None)           # $RUNPOINT_ROOT, else ./runpoint
    version = resolve_version(registry, "digits@champion")
    print(version.ref, checkpoint_location(store, version))
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import (
    CheckpointNotFoundError,
    ModelNotFoundError,
    RunNotFoundError,
    StoreError,
)
from ..query import open_root, run_dir
from ..store import ModelRegistry, ModelVersionRecord, Store, model_registry
from .refs import ModelRef, parse_model_ref


def registry_of(store: Store) -> ModelRegistry:
    """The store's model registry; StoreError for a backend without one."""
    registry = model_registry(store)
    if registry is None:
        raise StoreError(f"the store at {store.location} keeps no model registry", store.location)
    return registry


def open_registry(root: str | os.PathLike[str] | None = None) -> tuple[Store, ModelRegistry]:
    """(store, registry) of an existing root: a directory or a store URL (None: $RUNPOINT_ROOT, else ./runpoint)."""
    store = open_root(root)
    return store, registry_of(store)


def resolve_version(registry: ModelRegistry, ref: str | ModelRef) -> ModelVersionRecord:
    """The version ``ref`` names: ``NAME:V``, ``NAME@ALIAS`` or ``NAME`` (its latest live version)."""
    parsed = parse_model_ref(ref) if isinstance(ref, str) else ref
    if parsed.version is not None:
        return registry.get_version(parsed.name, parsed.version)
    if parsed.alias is not None:
        aliases = registry.list_aliases(parsed.name)
        for alias in aliases:
            if alias.alias == parsed.alias:
                return registry.get_version(parsed.name, alias.version)
        names = ", ".join(a.alias for a in aliases) or "none"
        raise ModelNotFoundError(f"no alias {parsed.alias!r} on model {parsed.name!r} (aliases: {names})", parsed.name)
    versions = registry.list_versions(parsed.name)
    if not versions:
        raise ModelNotFoundError(f"model {parsed.name!r} has no versions left (all were deleted)", parsed.name)
    return versions[-1]


def checkpoint_location(store: Store, version: ModelVersionRecord) -> str:
    """Where the version's checkpoint is: its recorded path, resolved in its run's directory when relative."""
    path = version.checkpoint
    if "://" in path or Path(path).is_absolute():
        return path
    if version.run_id is None:
        raise CheckpointNotFoundError(path)
    try:
        run = store.get_run(version.run_id)
    except RunNotFoundError:
        raise CheckpointNotFoundError(
            f"{path} of run {version.run_id} (the run model version {version.ref} came from was deleted)") from None
    if "://" in store.location:
        return f"{store.location}/{run.dir}/{path}"  # on the team server: fetched by remote_checkpoint
    return str(run_dir(store, run) / path)


def describe(version: ModelVersionRecord, aliases: dict[int, list[str]] | None = None) -> str:
    """``m:1 (champion, prod)``: a version and the aliases naming it."""
    named = (aliases or {}).get(version.version) or []
    return version.ref + (f" ({', '.join(named)})" if named else "")


def aliases_by_version(registry: ModelRegistry, name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for alias in registry.list_aliases(name):
        out.setdefault(alias.version, []).append(alias.alias)
    return out


def as_dict(version: ModelVersionRecord, aliases: dict[int, list[str]] | None = None) -> dict[str, Any]:
    """A version as JSON-able values, with its aliases (for ``--json`` and the dashboard)."""
    from ..store.model_records import to_wire

    return {**to_wire(version), "ref": version.ref, "aliases": (aliases or {}).get(version.version, [])}
