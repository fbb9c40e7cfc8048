"""``CheckpointProcess``: the part of checkpointing that depends on which process saves.

A checkpoint manager asks this object, and nothing else, the questions whose answers
change in a multi-rank job: which sequence number the next checkpoint gets, whether this
process moves the ``latest``/``best`` pointers, applies retention and updates the registry,
whose random generators are saved, and how a preemption signal becomes a save at a step
boundary. :class:`LocalProcess` answers them for one process; a rank-aware
implementation (one coordinator, per-rank RNG, agreement on the step) replaces it without
touching the manager.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from . import _rng
from ._checks import rng_names
from ._preemption import PreemptionHook

if TYPE_CHECKING:
    from .directory import CheckpointDirectory


class CheckpointProcess(Protocol):
    """What a manager asks about the process (or rank) it runs in."""

    rank: int
    world_size: int

    @property
    def coordinates(self) -> bool:
        """True for the one process that moves pointers, applies retention and registers checkpoints."""

    def next_sequence(self, directory: "CheckpointDirectory") -> int:
        """The sequence number of the next checkpoint (orders saves even when steps repeat)."""

    def agree_on_step(self, step: int) -> int:
        """The step every process saves; raises when they disagree."""

    def capture_rng(self) -> dict[str, Any] | None:
        """This process's generator states for the manifest, or None when ``rng=False``."""

    def restore_rng(self, states: Mapping[str, Any]) -> None:
        """Put this process's saved generator states back."""

    def rng_names(self) -> tuple[str, ...]:
        """The generators a checkpoint of this process records."""

    def preemption(self, save: Callable[[int, Mapping[str, Any], Any], Any], wait: Callable[[], Any],
                   saving_here: Callable[[], bool], already_saved: Callable[[int], bool]) -> PreemptionHook:
        """The hook that turns SIGTERM/SIGUSR1 into a save at the next step boundary."""


class OwnGenerators:
    """Captures and restores the generators of the process it runs in (each rank its own)."""

    rng: bool

    def capture_rng(self) -> dict[str, Any] | None:
        return _rng.capture() if self.rng else None

    def restore_rng(self, states: Mapping[str, Any]) -> None:
        if self.rng:
            _rng.restore(dict(states))

    def rng_names(self) -> tuple[str, ...]:
        return rng_names(self.rng)


class LocalProcess(OwnGenerators):
    """One process, no peers: it coordinates, and its generators are the only ones.

    Example::

        process = LocalProcess(rng=True)
        states = process.capture_rng()          # python, numpy, torch (CPU and CUDA)
    """

    rank = 0
    world_size = 1

    def __init__(self, rng: bool = True) -> None:
        self.rng = bool(rng)

    def __repr__(self) -> str:
        return f"LocalProcess(rng={self.rng})"

    @property
    def coordinates(self) -> bool:
        return True

    def next_sequence(self, directory: "CheckpointDirectory") -> int:
        return directory.next_sequence()

    def agree_on_step(self, step: int) -> int:
        return step

    def preemption(self, save: Callable[[int, Mapping[str, Any], Any], Any], wait: Callable[[], Any],
                   saving_here: Callable[[], bool], already_saved: Callable[[int], bool]) -> PreemptionHook:
        return PreemptionHook(save, wait, saving_here, already_saved)
