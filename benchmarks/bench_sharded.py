"""Sharded checkpoints of a multi-rank job: runpoint against torch.distributed.checkpoint and dd.

A model of ~1 GiB of fp32 is sharded with FSDP2 over 4 gloo ranks on the CPU (each rank
holds a quarter). In one job, interleaved round-robin: runpoint's sharded save (DCP
underneath, every file hashed, committed atomically by rank 0), ``dcp.save`` with its
``FileSystemWriter``, and ``dd conv=fsync`` of the same bytes (every rank its share at
once). Restores: on 4 ranks from those checkpoints, and on 2 ranks (a new job, resharding),
runpoint ``restore`` (hashes verified) vs ``dcp.load``. Async: how long the training
loop is blocked by ``save(async_save=True)`` vs ``dcp.async_save``. Each figure is the
wall time from a barrier before to a barrier after, so the slowest rank sets it.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._harness import Context, Section, Table

TITLE = "Sharded checkpoints: 4 ranks, runpoint vs torch.distributed.checkpoint and dd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _job(world: int, workdir: Path, mib: int, rounds: int, mode: str) -> dict[str, Any]:
    out, port = workdir / f"result-{mode}-{world}.json", _free_port()
    ranks = [subprocess.Popen([sys.executable, "-m", "benchmarks._sharded_ranks", str(rank), str(world), str(port),
                               str(workdir), str(mib), str(rounds), mode, str(out)],
                              cwd=Path(__file__).resolve().parents[1], env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
             for rank in range(world)]
    codes = [rank.wait(1800) for rank in ranks]
    if any(codes):
        raise RuntimeError(f"a rank of the {world}-rank {mode} job failed: exit codes {codes}")
    return json.loads(out.read_text())


def run(ctx: Context) -> Section:
    mib = ctx.size(1024, 128, 8)
    rounds = ctx.size(3, 2, 1)
    world = ctx.size(4, 4, 2)
    workdir = ctx.scratch("sharded")
    saved = _job(world, workdir, mib, rounds, "save")
    resharded = _job(max(1, world // 2), workdir, mib, rounds, "restore")
    medians, size = saved["medians"], saved["bytes"] / 2**30
    dd = medians["dd conv=fsync, every rank its share"]
    dcp_save = medians["torch.distributed.checkpoint.save"]
    save_rows = [[f"{world} ranks", name, medians[name], size / medians[name], dcp_save / medians[name], dd / medians[name]]
                 for name in ("runpoint save (sharded)", "torch.distributed.checkpoint.save",
                              "dd conv=fsync, every rank its share")]
    restore_rows = []
    for job in (saved, resharded):
        peer = job["medians"]["dcp.load + set_model_state_dict"]
        for name in ("runpoint restore (verified)", "dcp.load + set_model_state_dict"):
            restore_rows.append([f"{world} -> {job['world']} ranks", name, job["medians"][name], peer / job["medians"][name]])
    peer_blocked = medians["dcp.async_save: blocked"]
    async_rows = [[name, medians[f"{key}: blocked"], medians[f"{key}: until committed"],
                   peer_blocked / medians[f"{key}: blocked"]]
                  for name, key in (("runpoint save(), async_save=True", "runpoint async"),
                                    ("dcp.async_save", "dcp.async_save"))]
    poll = medians["should_save() with save_on_preemption(): one call"]
    section = Section(TITLE, intro=__doc__.split("\n\n", 1)[1] if __doc__ else "")
    section.tables += [
        Table(["job", "writer", "seconds (median)", "GiB/s", "throughput vs DCP", "throughput vs dd"], save_rows,
              title=f"Sharded save of {size:.2f} GiB across {world} ranks, fsynced",
              note=f"Target: runpoint at least 0.9x DCP's throughput, hashes and the atomic commit included. "
                   f"Medians of {rounds} rounds, writers interleaved."),
        Table(["saved -> restored on", "reader", "seconds (median)", "speed vs dcp.load"], restore_rows,
              title="Restore into the sharded model (files in the page cache)",
              note="runpoint verifies every file's hash before DCP reads it (each rank hashes a share), so every "
                   "byte is read twice (hash, then load): that is the gap to dcp.load, on a machine where 4 ranks "
                   "share 2 cores."),
        Table(["writer", "blocked, s (median)", "then until committed, s", "blocked: speed vs dcp.async_save"],
              async_rows, title="Async sharded save: time the training loop is blocked",
              note="Blocked: from save() called to save() returned, on the slowest rank (CPU tensors: a copy into "
                   "host memory). Both write and commit on a thread with collectives over a gloo group of their own "
                   "(dcp.async_save over the default group deadlocks against the next barrier). CUDA tensors (pinned "
                   "buffers, device-to-host copies) could not be measured here: no GPU."),
        Table(["job", "seconds per call (median)"], [[f"{world} ranks, gloo", poll]],
              title="should_save() once save_on_preemption() is on",
              note="One all-reduce (MAX) of the pending signal over the checkpoint signal group per call, so that "
                   "every rank saves the same step when any rank is signalled."),
    ]
    section.numbers = {"save": saved, "reshard": resharded}
    return section
