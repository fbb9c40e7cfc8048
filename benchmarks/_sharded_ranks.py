"""One rank of the sharded-checkpoint benchmark (run by :mod:`benchmarks.bench_sharded`).

    python -m benchmarks._sharded_ranks RANK WORLD PORT WORKDIR MIB ROUNDS MODE OUT

Every rank builds the same model (~MIB MiB of fp32 in 8 linear layers), shards it with
FSDP2 (``fully_shard`` on a CPU device mesh, gloo), then times with barriers around each
operation, so a figure is the wall time of the slowest rank:

- ``save``: runpoint ``CheckpointManager.save`` (sharded, hashed, committed), DCP's
  ``dcp.save`` with its ``FileSystemWriter``, and every rank running ``dd conv=fsync`` of
  its share of the bytes at once; interleaved, ROUNDS rounds; then restore from the
  checkpoints just written: runpoint ``restore`` vs ``dcp.load`` + ``set_model_state_dict``;
  then async: how long ``save(async_save=True)`` blocks vs ``dcp.async_save``.
  Last, the cost of one ``should_save()`` once ``save_on_preemption()`` is on (an
  all-reduce of the pending signal over the checkpoint group).
- ``restore``: restore only, from the checkpoints a job of another size wrote.

Rank 0 writes the medians to OUT as JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

MiB = 2**20


def _model(mib: int) -> Any:
    import torch

    torch.manual_seed(0)
    width = 1024
    rows = max(8, mib * MiB // 4 // 8 // width)
    return torch.nn.Sequential(*[torch.nn.Linear(width, rows, bias=False) if i % 2 == 0 else
                                 torch.nn.Linear(rows, width, bias=False) for i in range(8)])


def _timed(dist: Any, fn: Callable[[], Any]) -> float:
    dist.barrier()
    start = time.perf_counter()
    fn()
    dist.barrier()
    return time.perf_counter() - start


def main(rank: int, world: int, port: int, workdir: Path, mib: int, rounds: int, mode: str, out: Path) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        set_model_state_dict,
    )
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    import runpoint as rp

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (world,))
    model = _model(mib)
    for layer in model:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    times: dict[str, list[float]] = {}

    def note(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    share = sum(p.to_local().numel() * 4 for p in model.parameters())
    if mode == "save":
        for index in range(rounds):
            manager = rp.CheckpointManager(workdir / f"rp-{index}", rng=False)
            target = workdir / f"dd-{index}.rank{rank}"
            order = [("dd conv=fsync, every rank its share", lambda: subprocess.run(
                        ["dd", "if=/dev/zero", f"of={target}", "bs=4M", f"count={max(1, share // (4 * MiB))}",
                         "conv=fsync"], check=True, capture_output=True)),
                     ("torch.distributed.checkpoint.save", lambda: dcp.save(
                         get_model_state_dict(model), storage_writer=dcp.FileSystemWriter(str(workdir / f"dcp-{index}")))),
                     ("runpoint save (sharded)", lambda: manager.save(index, {"model": model}))]
            for name, fn in order[index % 3:] + order[: index % 3]:
                note(name, _timed(dist, fn))
    restore_from = sorted(workdir.glob("rp-*"))[-1]
    dcp_from = sorted(workdir.glob("dcp-*"))[-1]
    for _ in range(rounds):
        def dcp_load() -> None:
            state = get_model_state_dict(model)
            dcp.load(state, storage_reader=dcp.FileSystemReader(str(dcp_from)))
            set_model_state_dict(model, state)

        note("dcp.load + set_model_state_dict", _timed(dist, dcp_load))
        manager = rp.CheckpointManager(restore_from, rng=False)
        note("runpoint restore (verified)", _timed(dist, lambda: manager.restore({"model": model})))
    if mode == "save":
        # dcp.async_save's collectives run on its thread: over the default group they would interleave with the
        # barriers of _timed (they hang); DCP's docs ask for a group of their own, as runpoint's saves have
        background = dist.new_group(backend="gloo")
        for index in range(rounds):
            manager = rp.CheckpointManager(workdir / f"rpa-{index}", rng=False, async_save=True)
            note("runpoint async: blocked", _timed(dist, lambda: manager.save(index, {"model": model})))
            note("runpoint async: until committed", _timed(dist, manager.wait))
            manager.close()
            pending: list[Any] = []
            note("dcp.async_save: blocked", _timed(dist, lambda: pending.append(dcp.async_save(
                get_model_state_dict(model), storage_writer=dcp.FileSystemWriter(str(workdir / f"dcpa-{index}")),
                process_group=background))))
            note("dcp.async_save: until committed", _timed(dist, lambda: pending[0].result()))
    if mode == "save":  # the agreement save_on_preemption() adds to every should_save(): one all-reduce
        manager = rp.CheckpointManager(workdir / "preempt", rng=False)
        manager.save_on_preemption()
        calls = 200
        for _ in range(3):
            note("should_save() with save_on_preemption(): one call",
                 _timed(dist, lambda: [manager.should_save(step) for step in range(calls)]) / calls)
        manager.close()
    if rank == 0:
        out.write_text(json.dumps({"world": world, "bytes": sum(p.numel() * 4 for p in model.parameters()),
                                   "medians": {k: statistics.median(v) for k, v in times.items()}}))
    dist.destroy_process_group()


if __name__ == "__main__":
    rank, world, port, workdir, mib, rounds, mode, out = sys.argv[1:9]
    main(int(rank), int(world), int(port), Path(workdir), int(mib), int(rounds), mode, Path(out))
