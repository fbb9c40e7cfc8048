"""What registered model versions hold on to: the checkpoints of a run or a directory, and what deleting a run takes.

``runpoint ckpt gc`` keeps the steps these name; ``runpoint rm`` explains, asks, and, when
told to go ahead, deletes the versions with the run (their aliases go too, as events),
so that no alias is left naming a checkpoint that no longer exists.

Example::

    print(run_versions_text(store, run_id))   # "m:1 (champion), m:2"
"""

from __future__ import annotations

import os
from pathlib import Path

from ..store import ModelVersionRecord, Store, model_registry
from .register import current_user
from .resolve import aliases_by_version, checkpoint_location, describe


def run_versions(store: Store) -> dict[str, list[ModelVersionRecord]]:
    """Nothing but an index: run id -> its live versions, for every run that has some."""
    registry = model_registry(store)
    out: dict[str, list[ModelVersionRecord]] = {}
    for model in registry.list_models() if registry is not None else []:
        for version in registry.list_versions(model.name):  # type: ignore[union-attr]
            if version.run_id is not None:
                out.setdefault(version.run_id, []).append(version)
    return out


def run_versions_text(store: Store, run_id: str) -> str:
    """``m:1 (champion), m:2``: the run's live versions with their aliases ('' when none)."""
    registry = model_registry(store)
    if registry is None:
        return ""
    versions = registry.versions_of_run(run_id)
    aliases = {name: aliases_by_version(registry, name) for name in {v.name for v in versions}}
    return ", ".join(describe(v, aliases[v.name]) for v in versions)


def delete_run_versions(store: Store, run_id: str) -> list[ModelVersionRecord]:
    """Delete the run's versions (their aliases are removed as events); those deleted."""
    registry = model_registry(store)
    if registry is None:
        return []
    return [registry.delete_version(v.name, v.version, by=current_user()) for v in registry.versions_of_run(run_id)]


def registered_steps_in(store: Store, directory: str | os.PathLike[str]) -> set[int]:
    """The steps of the checkpoints in ``directory`` (a run's ``checkpoints/``) that live versions use."""
    registry = model_registry(store)
    if registry is None:
        return set()
    here = Path(directory).resolve()
    steps = set()
    for model in registry.list_models():
        for version in registry.list_versions(model.name):
            location = checkpoint_location(store, version)
            if version.step is not None and "://" not in location and Path(location).resolve().parent == here:
                steps.add(version.step)
    return steps
