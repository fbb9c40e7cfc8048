"""Sharded checkpoints of multi-rank jobs, saved through ``torch.distributed.checkpoint`` (DCP).

Layout of one checkpoint::

    step-000500/
      manifest.json                  written last, by rank 0: every file of every rank, hashed
      dcp/.metadata                  DCP's index of the tensors (a pickle, read with an allow-list)
      dcp/__0_0.distcp ...           the model and optimizer state: each rank its shards (FSDP2,
                                     DTensor), replicated tensors once (DDP: rank 0)
      ranks/rank-00000/state.msgpack everything else of each rank (schedulers, GradScaler, samplers,
      ranks/rank-00000/tensors.safetensors   plain values) and its random generators

Models and optimizers go through ``get_model_state_dict``/``get_optimizer_state_dict``
(each optimizer paired with the module in the state that owns its parameters), so a
checkpoint restores on another number of ranks, or in one plain process.

The commit is rank 0's: it creates the staging directory and decides the sequence
number; every rank writes its files; the file entries are gathered to rank 0, which
writes the manifest and renames the directory into place (:class:`~.atomic.Staging`),
then moves pointers and applies retention. Each step that can fail on one rank is
followed by a collective that tells every rank, so a failure raises on every rank
(naming the rank) instead of leaving the others waiting; the staging directory is then
removed, and a rank killed during a save leaves only a staging directory that rank 0's
next start tidies. See :mod:`._sharded_restore` for reading them back.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..artifacts.manifest import CheckpointInfo, FileEntry, Manifest, checkpoint_name
from ..distributed import (
    active_group,
    all_gather_objects,
    gather_objects,
    share_outcome,
)
from ..errors import CheckpointError
from . import _state, atomic
from ._checks import save_error, versions
from ._commit import _flush
from .io import Payload, SafetensorsIO

if TYPE_CHECKING:
    from ..artifacts import Artifacts
    from ..handle import RunHandle
    from .directory import CheckpointDirectory
    from .process import CheckpointProcess

RANKS_DIR = "ranks"
FAIL_HOOK = "RUNPOINT_TEST_DIE_IN_SAVE"  # tests: "<rank>" makes that rank die while writing its shard


def rank_dir(rank: int) -> str:
    return f"{RANKS_DIR}/rank-{rank:05d}"


def owner_of(optimizer: Any, modules: Mapping[str, Any]) -> Any:
    """The module of ``modules`` whose parameters ``optimizer`` updates, or None."""
    wanted = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for module in modules.values():
        if wanted <= {id(p) for p in module.parameters()}:
            return module
    return None


def split_state(state: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the modules and optimizers, for DCP, as DCP state dicts; everything else, as given)."""
    import torch
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    modules = {key: value for key, value in state.items() if isinstance(value, torch.nn.Module)}
    sharded: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.nn.Module):
            sharded[key] = get_model_state_dict(value)
        elif isinstance(value, torch.optim.Optimizer):
            module = owner_of(value, modules)
            if module is None:
                raise CheckpointError(f"cannot save state[{key!r}]: its parameters belong to no module in the state; "
                                      "put the model it optimizes in the state too")
            sharded[key] = get_optimizer_state_dict(module, value)
        else:
            rest[key] = value
    return sharded, rest


def _attempt(work: Callable[[], Any]) -> tuple[Any, str | None]:
    try:
        return work(), None
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"


def raise_for_ranks(problems: list[str | None], what: str) -> None:
    """Raise on every rank when any rank had a problem (``problems`` is all ranks', by rank)."""
    failed = [(rank, problem) for rank, problem in enumerate(problems) if problem]
    if failed:
        listed = "; ".join(f"rank {rank}: {problem}" for rank, problem in failed)
        raise CheckpointError(f"{what}: {listed}")


@dataclass
class PreparedSave:
    """One rank's part of a sharded save, ready to write: DCP's state dicts and the rest, encoded."""

    step: int
    sharded: dict[str, Any]
    encoded: Any  # _state.EncodedState
    keys: dict[str, str]
    state: Mapping[str, Any]


def prepare_sharded(process: "CheckpointProcess", step: int, state: Mapping[str, Any]) -> PreparedSave:
    """Split and encode this rank's state; raises on every rank if any rank cannot (a collective)."""
    def prepare() -> tuple[dict[str, Any], Any]:
        sharded, rest = split_state(state)
        return sharded, _state.encode(rest, process.capture_rng())

    prepared, problem = _attempt(prepare)
    keys = {key: _state.top_level_kind(value) for key, value in state.items()}
    gathered = all_gather_objects((problem, keys))
    raise_for_ranks([p for p, _ in gathered], f"could not save step {step}; nothing was saved")
    differing = [rank for rank, (_, theirs) in enumerate(gathered) if theirs != gathered[0][1]]
    if differing:
        shown = ", ".join(f"rank {r}: {sorted(gathered[r][1])}" for r in [0, *differing][:5])
        raise CheckpointError(f"the ranks disagree on the state's keys ({shown}); nothing was saved")
    sharded, encoded = prepared
    return PreparedSave(step, sharded, encoded, keys, state)


def commit_sharded(storage: "Artifacts", directory: "CheckpointDirectory", process: "CheckpointProcess",
                   run: "RunHandle | None", prepared: PreparedSave, metrics: dict[str, float],
                   after_commit: Callable[[CheckpointInfo], None]) -> CheckpointInfo:
    """Write every rank's part of ``prepared`` and commit it (call on every rank; collectives throughout)."""
    step, sharded, encoded = prepared.step, prepared.sharded, prepared.encoded
    staging: list[atomic.Staging] = []

    def begin() -> tuple[str, int]:
        try:
            staging.append(atomic.Staging(storage, checkpoint_name(step)))
        except OSError as exc:
            raise save_error(step, exc, storage.display()) from exc
        return staging[0].path, directory.next_sequence()

    path, sequence = share_outcome(begin)
    try:
        files = _write_rank(storage, path, process, step, sharded, encoded, prepared.state)
        _flush(run)  # every rank's points up to this step are stored before the checkpoint exists
        everyone = gather_objects(files)

        def commit() -> CheckpointInfo:
            assert everyone is not None
            manifest = Manifest(
                step=step, sequence=sequence, created_at=time.time(), files=dict(sorted(_merge(everyone).items())),
                metrics=metrics, keys=prepared.keys, rng=process.rng_names(),
                run_id=run.id if run is not None else None, tensors=len(encoded.tensors), versions=versions(),
                world_size=process.world_size, sharded=tuple(sharded),
            )
            try:
                staging[0].commit(manifest.to_json())
            except OSError as exc:
                raise save_error(step, exc, storage.display()) from exc
            committed = CheckpointInfo(step=step, path=storage.display(checkpoint_name(step)),
                                       created_at=manifest.created_at, bytes=manifest.total_bytes, metrics=metrics,
                                       manifest=manifest)
            directory.add(committed)
            after_commit(committed)  # pointers, registry, retention: rank 0 alone
            return committed

        info = share_outcome(commit)
    except BaseException:
        if staging:
            staging[0].abort()
        raise
    directory.add(info)
    return info


def _merge(per_rank: list[dict[str, FileEntry]]) -> dict[str, FileEntry]:
    merged: dict[str, FileEntry] = {}
    for files in per_rank:
        merged.update(files)
    return merged


def _write_rank(storage: "Artifacts", path: str, process: "CheckpointProcess", step: int, sharded: dict[str, Any],
                encoded: Any, state: Mapping[str, Any]) -> dict[str, FileEntry]:
    """Write this rank's files: its own directory, then its part of DCP's (a collective)."""
    import torch.distributed.checkpoint as dcp

    from ._dcp_storage import HashingWriter

    mine = rank_dir(process.rank)

    def write_own() -> dict[str, FileEntry]:
        storage.makedirs(path, mine)
        written = SafetensorsIO().save(storage, f"{path}/{mine}", Payload(encoded.tensors, encoded.structure, state))
        return {f"{mine}/{name}": entry for name, entry in written.items()}

    own, problem = _attempt(write_own)
    raise_for_ranks(all_gather_objects(problem), f"could not save step {step}; nothing was saved")
    writer = HashingWriter(storage, path)
    if os.environ.get(FAIL_HOOK) == str(process.rank):
        _die_while_writing(writer)
    dcp.save(sharded, storage_writer=writer, process_group=active_group())
    return {**own, **writer.written}


def _die_while_writing(writer: Any) -> None:
    """The test hook: this rank kills itself (SIGKILL) once DCP has started writing its shard file."""
    import signal

    opened = writer.hashing_fs.create_stream

    def create_stream(path: Any, mode: str) -> Any:
        if "w" in mode and str(path).endswith(".distcp"):
            os.kill(os.getpid(), signal.SIGKILL)
        return opened(path, mode)

    writer.hashing_fs.create_stream = create_stream  # type: ignore[method-assign]
