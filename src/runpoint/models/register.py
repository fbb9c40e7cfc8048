"""``rp.register_model``: record a checkpoint as the next version of a model, with its lineage.

The checkpoint is verified (every file against its manifest) and held against deletion
while the version is recorded, so retention running at the same moment cannot take it
(:mod:`runpoint.checkpoint.pinned`); from then on retention and ``runpoint ckpt gc`` keep it.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..checkpoint.pinned import PinnedCheckpoint, pinned
from ..errors import CheckpointNotFoundError, InvalidArgumentError, RunNotFoundError
from ..query import open_root, resolve_run, run_dir
from ..store import ModelVersionRecord, RunRecord, Store, checkpoint_registry
from .fetch import local_checkpoint
from .refs import parse_source
from .resolve import registry_of

MAX_SUMMARY_KEYS = 200  # the metrics' values at the checkpoint's step, for the lineage


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return None


def _is_run(source: Any) -> bool:
    return hasattr(source, "id") and hasattr(source, "store") and not isinstance(source, (str, os.PathLike))


def register_model(
    name: str,
    source: Any,
    *,
    step: int | None = None,
    description: str = "",
    tags: Iterable[str] = (),
    alias: str | None = None,
    metric: str | None = None,
    project: str | None = None,
    root: str | os.PathLike[str] | None = None,
) -> ModelVersionRecord:
    """Register a checkpoint as the next version (1, 2, ...) of model ``name``; returns the version.

    Args:
        name: the model (letters, digits, ``.``, ``_``, ``-``); created on its first version.
        source: a run (a ``Run``, or an id, prefix, name or ``latest``: its best checkpoint
            when it has one, else its latest), ``"RUN:step=400"`` (that step), or the path
            of a checkpoint directory.
        step: the run's checkpoint of this step (instead of ``:step=``).
        description, tags: free text and labels of the version.
        alias: also point this alias (``"champion"``) at the new version.
        metric: the metric the lineage names (default: the checkpoint's only metric, or the
            metric the run monitors).
        project: the model's project (default: the run's; ``default`` for a bare path).
        root: where the registry is (a directory or a server URL; default: the run's store,
            else ``$RUNPOINT_ROOT``, else ``./runpoint``).

    The checkpoint must exist and be intact. The version records the run, the step and
    the manifest's hash, the run's config hash and git commit (and whether the tree was
    dirty), the metric and its value, the metrics' values at that step, who and when.

    Example::

        v = rp.register_model("digits", run, alias="champion", description="val/acc 0.98")
        print(v.ref, v.lineage["git_commit"])                  # digits:1 3f2a...
    """
    store = source.store if _is_run(source) and root is None else open_root(root)
    registry = registry_of(store)
    run, location = _source(store, source, step)
    with local_checkpoint(store, location) as local, pinned(local) as checkpoint:
        lineage = _lineage(store, run, checkpoint, metric)
        recorded = _recorded_path(store, run, location if "://" in store.location else checkpoint.location)
        record = ModelVersionRecord(
            name=name, version=0, checkpoint=recorded, registered_at=0.0,
            run_id=run.id if run is not None else None, step=checkpoint.step, manifest_hash=checkpoint.digest,
            lineage=lineage, description=description, tags=tuple(tags), registered_by=current_user(),
        )
        version = registry.register_version(record, project=project or (run.project if run else "default"))
    if alias is not None:
        registry.move_alias(name, alias, version.version, by=version.registered_by)
    return version


def _source(store: Store, source: Any, step: int | None) -> tuple[RunRecord | None, str]:
    """(the run, the checkpoint's directory) that ``source`` names."""
    if _is_run(source):
        return _run_checkpoint(store, store.get_run(source.id), step)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidArgumentError("source", f"give a run, a run id, 'RUN:step=N' or a checkpoint path, not "
                                             f"{type(source).__qualname__}")
    text = os.fspath(source)
    if "://" in text or os.path.exists(text):
        if step is not None:
            raise InvalidArgumentError("step", "a checkpoint path names its step; step= is for a run")
        return _run_of_path(store, text), text
    ref, named_step = parse_source(text)
    if named_step is not None and step is not None and named_step != step:
        raise InvalidArgumentError("step", f"{text!r} says step {named_step}, step= says {step}")
    return _run_checkpoint(store, resolve_run(store, ref), step if step is not None else named_step)


def _run_checkpoint(store: Store, run: RunRecord, step: int | None) -> tuple[RunRecord, str]:
    """The run's checkpoint of ``step`` (default: the best, else the latest) as the registry lists it."""
    registry = checkpoint_registry(store)
    records = registry.list_checkpoints(run.id) if registry is not None else []
    if not records:
        raise CheckpointNotFoundError(f"run {run.id} ({run.name})", step)
    if step is not None:
        chosen = next((r for r in records if r.step == step), None)
        if chosen is None:
            steps = ", ".join(str(r.step) for r in records[-20:])
            raise CheckpointNotFoundError(f"run {run.id} (its checkpoints: steps {steps})", step)
    else:
        chosen = next((r for r in records if r.is_best), records[-1])
    path = chosen.path
    if "://" in path or Path(path).is_absolute() or "://" in store.location:
        return run, path if "://" not in store.location else f"{store.location}/{run.dir}/{path}"
    return run, str(run_dir(store, run) / path)


def _run_of_path(store: Store, location: str) -> RunRecord | None:
    """The run whose directory holds the checkpoint at ``location``, so that its retention protects it."""
    if "://" in location or "://" in store.location:
        return None
    from ..checkpoint.load import locate

    storage, name = locate(location)
    checkpoint = Path(storage.display(name)).resolve()
    root = Path(store.location).parent.resolve()
    try:
        project, run_id = checkpoint.relative_to(root).parts[:2]
        run = store.get_run(run_id)
    except (ValueError, RunNotFoundError):
        return None
    return run if run.project == project and checkpoint.is_relative_to(run_dir(store, run).resolve()) else None


def _recorded_path(store: Store, run: RunRecord | None, location: str) -> str:
    """The path to record: relative to the run's directory when inside it (a root can move), else as it is."""
    if run is not None and location.startswith(f"{store.location}/{run.dir}/"):  # on the team server
        return location[len(f"{store.location}/{run.dir}/"):]
    if run is None or "://" in location or "://" in store.location:
        return location
    try:
        return Path(location).resolve().relative_to(run_dir(store, run).resolve()).as_posix()
    except ValueError:
        return str(Path(location).resolve())


def _lineage(store: Store, run: RunRecord | None, checkpoint: PinnedCheckpoint, metric: str | None) -> dict[str, Any]:
    lineage: dict[str, Any] = {"checkpoint_metrics": dict(checkpoint.metrics), "checkpoint_bytes": checkpoint.bytes,
                               "checkpoint_created_at": checkpoint.created_at}
    summary: dict[str, Any] = {}
    if run is not None:
        meta = store.get_meta(run.id)
        git: Mapping[str, Any] = meta["git"] if isinstance(meta.get("git"), Mapping) else {}
        summary = _values_at(store, run.id, checkpoint.step)
        lineage.update(project=run.project, run_name=run.name, config_hash=run.config_hash,
                       git_commit=git.get("commit"), git_dirty=git.get("dirty"), git_branch=git.get("branch"),
                       summary=summary, run_summary=store.get_summary(run.id))
    chosen = metric or _monitored(store, run, checkpoint)
    value = checkpoint.metrics.get(chosen) if chosen else None
    lineage.update(metric=chosen, metric_value=value if value is not None else summary.get(chosen or ""))
    return lineage


def _monitored(store: Store, run: RunRecord | None, checkpoint: PinnedCheckpoint) -> str | None:
    if len(checkpoint.metrics) == 1:
        return next(iter(checkpoint.metrics))
    if run is None:
        return None
    configured = store.get_params(run.id).get("training.checkpoint.monitor")  # the config's CheckpointPolicy
    if isinstance(configured, str) and configured in checkpoint.metrics:
        return configured
    from ..query.analysis import best_metrics

    monitored = [best.key for best in best_metrics(store, run.id) if best.monitored]
    return next((key for key in monitored if key in checkpoint.metrics), monitored[0] if monitored else None)


def _values_at(store: Store, run_id: str, step: int) -> dict[str, float]:
    """Each metric's last value logged at or before ``step``: the run as it was at the checkpoint."""
    from ..checkpoint.save_timing import SAVE_SECONDS

    out: dict[str, float] = {}
    for key in [k for k in store.metric_keys(run_id) if k != SAVE_SECONDS][:MAX_SUMMARY_KEYS]:  # the save, not the model
        series = store.read_metric(run_id, key, max_step=step)
        if len(series.values):
            out[key] = series.values[-1]
    return out
