"""``RankContext``: this process's rank, the job's size, and whether a process group is up."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class RankContext:
    """One process's place in a distributed job.

    ``group_ready`` is True when ``torch.distributed`` has a default process group (the
    collectives in :mod:`.collectives` need one); ``job_id`` is torchrun's
    ``TORCHELASTIC_RUN_ID`` when it is set to something other than torchrun's default
    ``"none"``; ``restart`` is torchrun's ``TORCHELASTIC_RESTART_COUNT``.
    """

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    group_ready: bool
    backend: str | None = None
    job_id: str | None = None
    restart: int = 0
    host: str = ""

    @property
    def is_coordinator(self) -> bool:
        """Rank 0: it creates the run, commits checkpoints, moves pointers and applies retention."""
        return self.rank == 0

    @property
    def is_node_leader(self) -> bool:
        """Local rank 0: the one process per machine that samples the machine's CPU, memory and GPUs."""
        return self.local_rank == 0

    def describe(self) -> dict[str, object]:
        """What ``meta.json`` records of the job."""
        return {"world_size": self.world_size, "local_world_size": self.local_world_size, "backend": self.backend,
                "job_id": self.job_id, "restart": self.restart}


def _env_int(name: str, default: int | None = None) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise InvalidArgumentError(name, f"the environment variable must be an integer, got {value!r}") from None
    if number < 0:
        raise InvalidArgumentError(name, f"the environment variable must be 0 or more, got {number}")
    return number


def _group() -> tuple[int, int, str | None] | None:
    """(rank, world size, backend) of an initialized default process group, or None.

    Only looks if torch.distributed is already imported: a script that never imported
    it has no group, and importing torch costs a second.
    """
    if "torch.distributed" not in sys.modules:
        return None
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    return dist.get_rank(), dist.get_world_size(), str(dist.get_backend())


def current() -> RankContext | None:
    """This process's place in a multi-rank job, or None for a single process.

    A job of one rank (``WORLD_SIZE=1``, or a group of size 1) counts as a single process.
    """
    group = _group()
    if group is not None:
        rank, world, backend = group
    else:
        world_env = _env_int("WORLD_SIZE")
        if world_env is None:
            return None
        rank, world, backend = _env_int("RANK", 0) or 0, world_env, None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise InvalidArgumentError("RANK", f"rank {rank} is outside a job of {world} ranks")
    job_id = os.environ.get("TORCHELASTIC_RUN_ID") or None
    return RankContext(
        rank=rank, world_size=world, local_rank=_env_int("LOCAL_RANK", rank) or 0,
        local_world_size=_env_int("LOCAL_WORLD_SIZE", world) or world, group_ready=group is not None,
        backend=backend, job_id=None if job_id == "none" else job_id,
        restart=_env_int("TORCHELASTIC_RESTART_COUNT", 0) or 0, host=socket.gethostname(),
    )
