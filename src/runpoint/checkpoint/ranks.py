"""``DistributedProcess``: the :class:`~.process.CheckpointProcess` of one rank of a multi-rank job.

Rank 0 coordinates: it creates the staging directory, decides the sequence number,
writes the manifest, commits, moves the pointers, applies retention and updates the
registry. Every rank saves and restores its own random generators. The step of a save
must be the same on every rank; when it is not, every rank raises the same error naming
the ranks that differ (no rank waits forever for the others).

:func:`process_for` picks the process a :class:`~.manager.CheckpointManager` uses: this one
in a job whose process group is up, :class:`~.process.LocalProcess` otherwise.

Example::

    dist.init_process_group("nccl")
    ckpt = rp.CheckpointManager("checkpoints")       # a DistributedProcess: sharded saves
    assert ckpt.process.world_size == dist.get_world_size()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..distributed import RankContext, broadcast_object, current, same_everywhere
from ..errors import CheckpointError, InvalidArgumentError, RunpointError
from . import _rng
from ._checks import rng_names
from ._preemption import PreemptionHook
from .process import CheckpointProcess, LocalProcess

if TYPE_CHECKING:
    from .directory import CheckpointDirectory


class DistributedProcess:
    """One rank of a job with an initialized ``torch.distributed`` process group."""

    sharded = True  # the manager saves through torch.distributed.checkpoint

    def __init__(self, ranks: RankContext, rng: bool = True) -> None:
        self.rank = ranks.rank
        self.world_size = ranks.world_size
        self.rng = bool(rng)

    def __repr__(self) -> str:
        return f"DistributedProcess(rank={self.rank}, world_size={self.world_size}, rng={self.rng})"

    @property
    def coordinates(self) -> bool:
        return self.rank == 0

    def next_sequence(self, directory: "CheckpointDirectory") -> int:
        """Rank 0's next sequence number, on every rank (a collective)."""
        sequence = broadcast_object(directory.next_sequence() if self.rank == 0 else None)
        assert sequence is not None
        return sequence

    def agree_on_step(self, step: int) -> int:
        try:
            same_everywhere(step, "the step to save")
        except RunpointError as exc:
            raise CheckpointError(f"{exc}; nothing was saved") from None
        return step

    def capture_rng(self) -> dict[str, Any] | None:
        return _rng.capture() if self.rng else None

    def restore_rng(self, states: Mapping[str, Any]) -> None:
        if self.rng:
            _rng.restore(dict(states))

    def rng_names(self) -> tuple[str, ...]:
        return rng_names(self.rng)

    def preemption(self, save: Callable[[int, Mapping[str, Any], Any], Any], wait: Callable[[], Any],
                   saving_here: Callable[[], bool], already_saved: Callable[[int], bool]) -> PreemptionHook:
        return _NotAcrossRanks(save, wait, saving_here, already_saved)


class _NotAcrossRanks(PreemptionHook):
    """Preemption saves need every rank to agree on when to save; not built yet, so refused
    when asked for (a signal that reached one rank would leave it waiting for the others)."""

    def install(self, getter: Any, run: Any) -> None:
        raise CheckpointError(
            "save_on_preemption() is not yet supported in a multi-rank job (a signal reaches the ranks at "
            "different steps, and a save needs them all); save every N steps instead"
        )


def process_for(rng: bool) -> CheckpointProcess:
    """The process of a new manager: a :class:`DistributedProcess` in a multi-rank job, else local.

    Raises :class:`~runpoint.errors.CheckpointError` when the environment says several ranks
    (``WORLD_SIZE`` > 1) but no process group is initialized: the ranks could not agree on
    anything, and each would write a whole checkpoint over the others'.
    """
    ranks = current()
    if ranks is None:
        return LocalProcess(rng)
    if not ranks.group_ready:
        raise CheckpointError(
            f"this is rank {ranks.rank} of a {ranks.world_size}-rank job (WORLD_SIZE={ranks.world_size}) but "
            "torch.distributed has no process group: call torch.distributed.init_process_group() before "
            "creating the CheckpointManager, or pass process=LocalProcess() to save from this process alone"
        )
    return DistributedProcess(ranks, rng)


def check_async(process: CheckpointProcess, async_save: bool) -> None:
    if async_save and getattr(process, "sharded", False):
        raise InvalidArgumentError(
            "async_save", "async saves of sharded multi-rank checkpoints are not yet supported; use async_save=False"
        )
