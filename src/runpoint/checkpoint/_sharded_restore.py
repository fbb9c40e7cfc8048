"""Reading sharded checkpoints back (see :mod:`.sharded` for their layout).

Into a live job (:func:`restore_sharded`, on every rank): the files were verified against
the manifest first (:func:`verifier`: each rank hashes a share of them, so the whole
checkpoint is read once); the modules' and optimizers' state dicts (``get_model_state_dict``
/ ``get_optimizer_state_dict`` of the live objects) are compared with DCP's metadata, the
rest with the rank's own directory, and every rank's problems are gathered, so a mismatch
raises one error on every rank, naming the rank, before anything changes. Then DCP loads
(planning the reads, so any number of ranks, or one plain process, can read a checkpoint
saved by any other number) and ``set_model_state_dict`` / ``set_optimizer_state_dict``
apply it. Random generators come back only on the same world size (the same rank's).

Outside a job (:func:`load_full`): DCP with no process group fills tensors allocated from
the metadata, so ``load_checkpoint`` and ``export`` give full tensors, in the nested shape
a single-process checkpoint gives (optimizer state keyed by parameter index).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import warnings
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, MutableMapping

from ..artifacts.manifest import CheckpointInfo, Manifest
from ..distributed import active_group, all_gather_objects
from ..errors import CheckpointCorruptError, CheckpointError
from . import _state
from ._restore import load_into
from .io import SafetensorsIO
from .sharded import owner_of, raise_for_ranks, rank_dir

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from .process import CheckpointProcess

logger = logging.getLogger("runpoint")


def verify_share(storage: "Artifacts", name: str, manifest: Manifest, rank: int, world: int) -> list[str]:
    """Re-hash this rank's share of the checkpoint's files; one line per problem."""
    names = sorted(manifest.files)[rank::world]
    share = dataclasses.replace(manifest, files={file: manifest.files[file] for file in names})
    return SafetensorsIO().verify(storage, name, share)


def verifier(storage: "Artifacts", process: "CheckpointProcess", distributed: bool) -> Callable[[CheckpointInfo], list[str]]:
    """What ``first_intact`` checks a sharded candidate with: every rank's problems, on every rank."""
    def check(info: CheckpointInfo) -> list[str]:
        world = process.world_size if distributed else 1
        rank = process.rank if distributed else 0
        mine = verify_share(storage, info.name, info.manifest, rank, world)
        everyone = all_gather_objects(mine) if distributed else [mine]
        return [problem for problems in everyone for problem in problems]
    return check


def _rank_document(storage: "Artifacts", name: str, manifest: Manifest, rank: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(decoded document, tensors) of one rank's directory, already verified."""
    prefix = rank_dir(rank) + "/"
    files = {file[len(prefix):]: entry for file, entry in manifest.files.items() if file.startswith(prefix)}
    where = storage.display(name)
    if not files:
        raise CheckpointCorruptError(where, prefix, "the manifest lists no files of this rank")
    plain = dataclasses.replace(manifest, files=files, sharded=None, compression=None)
    payload = SafetensorsIO().load(storage, f"{name}/{prefix.rstrip('/')}", plain, verify=False)
    try:
        return _state.decode(payload.structure), payload.tensors
    except ValueError as exc:
        raise CheckpointCorruptError(where, prefix, str(exc)) from None


def _live_state_dicts(state: Mapping[str, Any], keys: tuple[str, ...], strict: bool, problems: list[str]) -> dict[str, Any]:
    import torch
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    modules = {key: value for key, value in state.items() if isinstance(value, torch.nn.Module)}
    live: dict[str, Any] = {}
    for key in keys:
        value = state.get(key)
        if isinstance(value, torch.nn.Module):
            live[key] = get_model_state_dict(value)
        elif isinstance(value, torch.optim.Optimizer):
            owner = owner_of(value, modules)
            if owner is None:
                problems.append(f"state[{key!r}]: its parameters belong to no module in the state")
            else:
                live[key] = get_optimizer_state_dict(owner, value)
        elif strict:
            problems.append(f"state[{key!r}]: the checkpoint holds a module or optimizer there, the state has "
                            f"{'nothing' if key not in state else type(value).__qualname__}")
    extra = [key for key in modules if key not in keys] + [
        key for key, value in state.items() if isinstance(value, torch.optim.Optimizer) and key not in keys]
    if strict and extra:
        problems.append(f"not in the checkpoint: {', '.join(map(repr, extra))}")
    return live


def _compare(live: dict[str, Any], metadata: Any, strict: bool, problems: list[str]) -> None:
    """Keys and shapes of the live state dicts against DCP's metadata."""
    from torch.distributed.checkpoint._nested_dict import flatten_state_dict
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    flat, _ = flatten_state_dict(live)
    saved = metadata.state_dict_metadata
    missing = [fqn for fqn in flat if fqn not in saved]
    extra = [fqn for fqn in saved if fqn not in flat and fqn.split(".", 1)[0] in live]
    if strict and missing:
        problems.append(f"not in the checkpoint: {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if strict and extra:
        problems.append(f"in the checkpoint but not in the state: {', '.join(extra[:8])}"
                        f"{' ...' if len(extra) > 8 else ''}")
    for fqn, value in flat.items():
        entry = saved.get(fqn)
        if isinstance(entry, TensorStorageMetadata) and hasattr(value, "shape") and tuple(value.shape) != tuple(entry.size):
            problems.append(f"{fqn}: shape {tuple(value.shape)} here, {tuple(entry.size)} in the checkpoint")


def restore_sharded(storage: "Artifacts", info: CheckpointInfo, state: Mapping[str, Any],
                    process: "CheckpointProcess", *, strict: bool, map_location: Any, distributed: bool) -> None:
    """Load the verified sharded checkpoint ``info`` into ``state`` (on every rank when ``distributed``)."""
    import torch.distributed.checkpoint as dcp

    from ._dcp_storage import SafeLoadPlanner, SafeReader

    manifest, where = info.manifest, info.path
    keys = manifest.sharded or ()
    rank = process.rank if distributed else 0
    source = rank if rank < manifest.world_size else 0

    def prepare() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
        problems: list[str] = []
        live = _live_state_dicts(state, keys, strict, problems)
        try:
            metadata = SafeReader(storage, info.name).read_metadata()
        except ValueError as exc:
            raise CheckpointCorruptError(where, "dcp/.metadata", str(exc)) from None
        _compare(live, metadata, strict, problems)
        document, tensors = _rank_document(storage, info.name, manifest, source)
        rest = {key: value for key, value in state.items() if key not in keys and key not in live}
        try:
            load_into(rest, document["state"], tensors, strict=strict, map_location=map_location, where=where,
                      dry_run=True)
        except CheckpointError as exc:
            problems.append(str(exc).split(": ", 1)[-1])
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise CheckpointError(f"cannot restore from {where}: {len(problems)} mismatch(es):\n{listed}", where)
        return live, rest, document, tensors

    try:
        prepared, problem = prepare(), None
    except CheckpointError as exc:
        if not distributed:
            raise
        prepared, problem = None, str(exc)
    if distributed:
        raise_for_ranks(all_gather_objects(problem), f"cannot restore from {where}; nothing was changed")
    assert prepared is not None
    live, rest, document, tensors = prepared
    with _in_one_process_quietly(not distributed):
        dcp.load(live, storage_reader=SafeReader(storage, info.name),
                 planner=SafeLoadPlanner(allow_partial_load=not strict), no_dist=not distributed,
                 process_group=active_group() if distributed else None)
    _apply_state_dicts(state, live)
    load_into(rest, document["state"], tensors, strict=strict, map_location=map_location, where=where)
    target: MutableMapping[str, Any] = state  # type: ignore[assignment]  # restore() checked it has __setitem__
    for key, value in rest.items():
        target[key] = value
    if "rng" in document:
        if manifest.world_size == (process.world_size if distributed else 1):
            process.restore_rng(_state.materialize(document["rng"], tensors))
        else:
            logger.warning("runpoint: %s was saved by %d ranks, this job has %d: the random generators are not "
                           "restored", where, manifest.world_size, process.world_size if distributed else 1)


def _apply_state_dicts(state: Mapping[str, Any], live: dict[str, Any]) -> None:
    import torch
    from torch.distributed.checkpoint.state_dict import (
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    modules = {key: value for key, value in state.items() if isinstance(value, torch.nn.Module)}
    for key, loaded in live.items():
        target = state[key]
        if isinstance(target, torch.nn.Module):
            set_model_state_dict(target, loaded)
        else:
            set_optimizer_state_dict(owner_of(target, modules), target, loaded)


def load_full(storage: "Artifacts", name: str, manifest: Manifest, *, map_location: Any = None,
              verify: bool = True) -> dict[str, Any]:
    """A sharded checkpoint's whole state, as plain values with full tensors (one process, no group)."""
    import torch.distributed.checkpoint as dcp

    from ._dcp_storage import SafeEmptyLoadPlanner, SafeReader

    where = storage.display(name)
    if verify:
        problems = verify_share(storage, name, manifest, 0, 1)
        if problems:
            raise CheckpointCorruptError(where, problems[0].split(":", 1)[0], problems[0].split(": ", 1)[-1])
    planner = SafeEmptyLoadPlanner()
    try:
        SafeReader(storage, name).read_metadata()  # refused here, not wrapped in DCP's CheckpointException
    except ValueError as exc:
        raise CheckpointCorruptError(where, "dcp/.metadata", str(exc)) from None
    with _in_one_process_quietly(True):
        dcp.load({}, storage_reader=SafeReader(storage, name), planner=planner, no_dist=True)
    loaded: dict[str, Any] = planner.original_state_dict  # dcp.load fills a copy of the dict it is given
    document, tensors = _rank_document(storage, name, manifest, 0)
    rest = _state.materialize(document["state"], tensors, map_location)
    result: dict[str, Any] = {}
    for key in manifest.keys or {**rest, **loaded}:
        if key in loaded:
            value = loaded[key]
            if manifest.keys.get(key) == "optimizer":
                value = indexed_optimizer_state(value)
            result[key] = _to_device(value, map_location)
        elif key in rest:
            result[key] = rest[key]
    return result


def indexed_optimizer_state(state: dict[str, Any]) -> dict[str, Any]:
    """An optimizer state dict keyed by parameter name (DCP's) keyed by index, as ``Optimizer.state_dict()`` is."""
    groups = state.get("param_groups", [])
    index: dict[str, int] = {}
    for group in groups:
        for fqn in group.get("params", []):
            index.setdefault(fqn, len(index))
    return {
        "state": {index.get(fqn, fqn): value for fqn, value in state.get("state", {}).items()},
        "param_groups": [{**group, "params": [index[fqn] for fqn in group.get("params", [])]} for group in groups],
    }


def _to_device(value: Any, map_location: Any) -> Any:
    if map_location is None:
        return value
    if isinstance(value, dict):
        return {key: _to_device(item, map_location) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_device(item, map_location) for item in value]
    return value.to(map_location) if hasattr(value, "to") and hasattr(value, "shape") else value


@contextlib.contextmanager
def _in_one_process_quietly(plain: bool) -> Iterator[None]:
    """In a plain process DCP warns that it "assumes the intent is to load in a single process": it is."""
    with warnings.catch_warnings():
        if plain:
            warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process")
        yield
