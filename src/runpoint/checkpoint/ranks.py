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

import itertools
import os
from typing import TYPE_CHECKING, Any, Callable, Mapping

from ..distributed import (
    CheckpointGroups,
    RankContext,
    arrivals,
    broadcast_object,
    checkpoint_groups,
    current,
    max_everywhere,
    publish,
    same_everywhere,
)
from ..errors import CheckpointError, InvalidArgumentError, RunpointError
from ._preemption import PreemptionHook
from .process import CheckpointProcess, LocalProcess, OwnGenerators

if TYPE_CHECKING:
    from .directory import CheckpointDirectory


ARRIVAL_TIMEOUT = "RUNPOINT_CHECKPOINT_ARRIVAL_TIMEOUT"  # seconds a rank waits for the others at a first save
_numbers = itertools.count(1)


def _arrival_timeout() -> float:
    value = os.environ.get(ARRIVAL_TIMEOUT, "")
    try:
        seconds = float(value) if value else 300.0
    except ValueError:
        raise InvalidArgumentError(ARRIVAL_TIMEOUT, f"must be a number of seconds, got {value!r}") from None
    if not seconds > 0:
        raise InvalidArgumentError(ARRIVAL_TIMEOUT, f"must be more than 0 seconds, got {value!r}")
    return seconds


class DistributedProcess(OwnGenerators):
    """One rank of a job with an initialized ``torch.distributed`` process group."""

    sharded = True  # the manager saves through torch.distributed.checkpoint

    def __init__(self, ranks: RankContext, rng: bool = True) -> None:
        self.rank = ranks.rank
        self.world_size = ranks.world_size
        self.rng = bool(rng)
        self.number = next(_numbers)  # the n-th manager of this process: the same on every rank
        self._arrived: set[str] = set()

    def together(self, what: str) -> CheckpointGroups:
        """The checkpoint groups, once every rank is known to call ``what`` (checked the first time only).

        The first ``save()`` (likewise ``restore()``, ``should_save()``) of a manager is where a
        script that calls it on rank 0 alone (``if rank == 0: ckpt.save(...)``, the DDP habit)
        would hang forever in a collective. Instead each rank publishes its arrival in the
        job's store (no waiting) and waits a bounded time for the others'; the ranks that
        waited in vain raise. The groups are created only after that (a collective too).
        """
        if what not in self._arrived:
            key = f"ckpt/{self.number}/{what}"
            publish(f"{key}/{self.rank}", True)
            timeout = _arrival_timeout()
            missing = arrivals(key, range(self.world_size), timeout)
            if missing:
                raise CheckpointError(
                    f"rank {self.rank} waited {timeout:g} s for rank(s) {', '.join(map(str, missing))} to call "
                    f"{what}() too: in a multi-rank job every rank calls {what}() (the checkpoint is sharded); to save "
                    "from rank 0 alone, pass process=LocalProcess() (from runpoint.checkpoint) to its "
                    f"CheckpointManager ({ARRIVAL_TIMEOUT} sets the wait)"
                )
            self._arrived.add(what)
        return checkpoint_groups()

    def __repr__(self) -> str:
        return f"DistributedProcess(rank={self.rank}, world_size={self.world_size}, rng={self.rng})"

    @property
    def coordinates(self) -> bool:
        return self.rank == 0

    def next_sequence(self, directory: "CheckpointDirectory") -> int:
        """Rank 0's next sequence number, on every rank (a collective)."""
        sequence = broadcast_object(directory.next_sequence() if self.rank == 0 else None,
                                    group=self.together("save").data)
        assert sequence is not None
        return sequence

    def agree_on_step(self, step: int) -> int:
        try:
            same_everywhere(step, "the step to save", group=self.together("save").data)
        except RunpointError as exc:
            raise CheckpointError(f"{exc}; nothing was saved") from None
        return step

    def preemption(self, save: Callable[[int, Mapping[str, Any], Any], Any], wait: Callable[[], Any],
                   saving_here: Callable[[], bool], already_saved: Callable[[int], bool]) -> PreemptionHook:
        return AcrossRanks(self, save, wait, saving_here, already_saved)


class AcrossRanks(PreemptionHook):
    """Preemption of a multi-rank job: a signal on any rank makes every rank save the same step.

    The signal reaches one rank (or each at a different moment), so the ranks agree in
    ``should_save()``: an all-reduce (MAX) of this rank's noted signal over the checkpoint
    signal group, at every ``check_every``-th call once :meth:`install` ran. Every rank
    then answers True at the same call, saves the same step, and exits with the signal.
    Only an agreed signal ends a rank: one noted here after the last agreement waits for
    the next, or a save that this rank alone finished would leave the others waiting.
    """

    def __init__(self, process: DistributedProcess, *args: Any) -> None:
        super().__init__(*args)
        self._process = process
        self._calls = 0
        self.agreed: int | None = None

    def install(self, getter: Any, run: Any) -> None:
        if getter is not None:
            raise CheckpointError(
                "save_on_preemption(get_state) saves at once inside the signal handler of the rank the signal "
                "reached; a sharded checkpoint needs every rank at the same step: call save_on_preemption() "
                "without get_state (every rank saves at the next step boundary)"
            )
        super().install(None, run)

    def poll(self) -> int | None:
        if not self.at_boundary or self.agreed is not None:
            return self.agreed
        self._calls += 1
        if self._calls % self.check_every:
            return None
        agreed = max_everywhere(self.pending or 0, group=self._process.together("should_save").signals)
        self.agreed = agreed or None  # another rank's signal: this one saves and exits with it too
        return self.agreed

    def exit_if_pending(self, saved_step: int | None) -> None:
        if self.agreed is None:
            return
        self.pending, self.agreed = self.agreed, None
        super().exit_if_pending(saved_step)


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
