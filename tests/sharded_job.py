"""The training job the sharded-checkpoint tests run on real gloo ranks (imported by each rank).

``train(...)`` trains a small model with AdamW for ``total`` steps, saving every ``every``
steps, resuming from the checkpoint directory if it has one, and writes the final model and
optimizer state (full tensors) to ``final-rank<r>.pt``. Noise from the global generator and
a ResumableSampler make an exact resume depend on RNG and sampler state coming back.
"""

from __future__ import annotations

import os
import signal

import torch
import torch.distributed as dist

import runpoint as rp
from runpoint.checkpoint import ResumableSampler
from runpoint.checkpoint.directory import CheckpointDirectory

DATA = torch.arange(64 * 8, dtype=torch.float32).reshape(64, 8).sin()


def build(kind: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    if kind == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return model, DistributedDataParallel(model)
    if kind == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (dist.get_world_size(),))
        for layer in model:
            if isinstance(layer, torch.nn.Linear):
                fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model, model
    return model, model


def record_pointer_writers(path: str) -> None:
    original = CheckpointDirectory.write_pointers

    def write_pointers(self, *args, **kwargs):
        with open(path, "a") as handle:
            handle.write(f"{dist.get_rank() if dist.is_initialized() else 'plain'}\n")
        return original(self, *args, **kwargs)

    CheckpointDirectory.write_pointers = write_pointers


def train(kind: str, directory: str, total: int, every: int = 0, die_at: int = -1, out: str = ".",
          async_save: bool = False, preempt_at: int = -1) -> None:
    """``preempt_at``: rank 1 alone sends itself SIGTERM during that step (``save_on_preemption()`` is on)."""
    rank = dist.get_rank()
    model, wrapped = build(kind)
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=0.05)
    sampler = ResumableSampler(len(DATA), seed=3)
    torch.manual_seed(100 + rank)
    state = {"model": wrapped, "optimizer": optimizer, "sampler": sampler, "extra": {"rank": rank}}
    ckpt = rp.CheckpointManager(directory, keep_last=2, async_save=async_save) if every else None
    if ckpt and preempt_at >= 0:
        ckpt.save_on_preemption()
    start = (ckpt.restore(state) or 0) if ckpt else 0
    print("start", start, flush=True)
    batches = iter(sampler)

    def draw() -> int:
        nonlocal batches
        try:
            return next(batches)
        except StopIteration:  # the epoch ended
            batches = iter(sampler)
            return next(batches)

    for step in range(start, total):
        if step == die_at and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        index = [draw() for _ in range(4)]
        x = DATA[index] + 0.01 * torch.randn(4, 8)
        loss = wrapped(x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == preempt_at and rank == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        if ckpt and ((preempt_at >= 0 and ckpt.should_save(step)) or (step + 1) % every == 0):
            info = ckpt.save(step, state)
            print("saved", step, info.name if info else "(async)", flush=True)
    if ckpt:
        ckpt.close()
    final = full_state(kind, wrapped, optimizer)
    if rank == 0 or kind != "fsdp":
        torch.save(final, os.path.join(out, f"final-rank{rank}.pt"))
    print("done", flush=True)


def full_state(kind: str, wrapped: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The model's and optimizer's full (unsharded) state, as one process would hold it."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    full = StateDictOptions(full_state_dict=True, cpu_offload=kind == "fsdp")
    return {"model": get_model_state_dict(wrapped, options=full),
            "optimizer": get_optimizer_state_dict(wrapped, optimizer, options=full)}


def restore_only(kind: str, directory: str, out: str = ".") -> None:
    """Restore the latest checkpoint of ``directory`` into a fresh job and write its full state."""
    model, wrapped = build(kind)
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=0.05)
    state = {"model": wrapped, "optimizer": optimizer, "sampler": ResumableSampler(len(DATA), seed=3),
             "extra": {"rank": -1}}
    start = rp.CheckpointManager(directory).restore(state)
    final = full_state(kind, wrapped, optimizer)
    if dist.get_rank() == 0:
        torch.save(final, os.path.join(out, "restored.pt"))
    print("restored", start, state["extra"], state["sampler"].position, flush=True)
