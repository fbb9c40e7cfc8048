"""When to save and what to keep: small value objects, combined.

Retention policies answer "which of these committed checkpoints stay?" and know nothing
about files. Each returns the steps it keeps; :class:`AnyOf` keeps what any of its
policies keeps (Orbax's ``AnyPreservationPolicy``). The manager always keeps the latest
and the best checkpoint on top of what the policy says, and never deletes one being
read. :func:`retention_from_keywords` builds the policy behind
``CheckpointManager(keep_last=, keep_best=, keep_every_n_steps=)``.

Save triggers answer "should step N be saved?". :func:`save_triggers` and :func:`due` are the
one definition behind both ``CheckpointManager.should_save`` and the config's
``training.checkpoint.should_save``: with ``every N steps`` the steps 0, N, 2N, ... are due.

Example::

    policy = AnyOf((LatestN(3), BestN(1, monitor="val/loss", mode="min"), EveryNSteps(10_000)))
    kept = policy.keep(manager.list())
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, Sequence, runtime_checkable

from .._util.schedule import NO_TRIGGER, step_is_due
from ..artifacts.manifest import CheckpointInfo
from ..errors import InvalidArgumentError

Mode = Literal["min", "max"]


@runtime_checkable
class RetentionPolicy(Protocol):
    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        """The steps to keep among ``checkpoints`` (any order)."""


def _positive(argument: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(argument, f"must be a positive int, got {value!r}")
    return value


def _check_mode(mode: object) -> None:
    if mode not in ("min", "max"):
        raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {mode!r}")


@dataclass(frozen=True)
class KeepAll:
    """Keep every checkpoint (the default when no retention is asked for)."""

    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        return {c.step for c in checkpoints}


@dataclass(frozen=True)
class LatestN:
    """Keep the ``n`` most recently saved checkpoints."""

    n: int

    def __post_init__(self) -> None:
        _positive("keep_last", self.n)

    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        newest = sorted(checkpoints, key=lambda c: c.sequence, reverse=True)
        return {c.step for c in newest[: self.n]}


def metric_value(checkpoint: CheckpointInfo, monitor: str) -> float | None:
    """The checkpoint's value of ``monitor``; None when absent or NaN."""
    value = checkpoint.metrics.get(monitor)
    if value is None or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def ranked(checkpoints: Sequence[CheckpointInfo], monitor: str, mode: Mode) -> list[CheckpointInfo]:
    """Checkpoints with a value of ``monitor``, best first; ties go to the earlier save."""
    scored = [(metric_value(c, monitor), c) for c in checkpoints]
    sign = 1.0 if mode == "min" else -1.0
    return [c for value, c in sorted(
        ((v, c) for v, c in scored if v is not None), key=lambda item: (sign * item[0], item[1].sequence)
    )]


@dataclass(frozen=True)
class BestN:
    """Keep the ``n`` checkpoints with the best ``monitor`` value (``mode`` min or max)."""

    n: int
    monitor: str
    mode: Mode = "min"

    def __post_init__(self) -> None:
        _positive("keep_best", self.n)
        _check_mode(self.mode)
        if not isinstance(self.monitor, str) or not self.monitor:
            raise InvalidArgumentError("monitor", "keep_best needs the name of a metric to monitor")

    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        return {c.step for c in ranked(checkpoints, self.monitor, self.mode)[: self.n]}


@dataclass(frozen=True)
class EveryNSteps:
    """Keep, for good, every checkpoint whose step is a multiple of ``n``."""

    n: int

    def __post_init__(self) -> None:
        _positive("keep_every_n_steps", self.n)

    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        return {c.step for c in checkpoints if c.step % self.n == 0}


@dataclass(frozen=True)
class AnyOf:
    """Keep what any of ``policies`` keeps."""

    policies: tuple[RetentionPolicy, ...]

    def keep(self, checkpoints: Sequence[CheckpointInfo]) -> set[int]:
        kept: set[int] = set()
        for policy in self.policies:
            kept |= policy.keep(checkpoints)
        return kept


def retention_from_keywords(
    keep_last: int | None = None, keep_best: int | None = None, monitor: str | None = None,
    mode: Mode = "min", keep_every_n_steps: int | None = None,
) -> RetentionPolicy:
    """The policy of the manager's keywords; :class:`KeepAll` when none is given."""
    _check_mode(mode)
    if keep_best is not None and not monitor:
        raise InvalidArgumentError("keep_best", "needs monitor=, the metric that decides which checkpoint is best")
    policies: list[RetentionPolicy] = []
    if keep_last is not None:
        policies.append(LatestN(keep_last))
    if keep_best is not None:
        policies.append(BestN(keep_best, monitor or "", mode))
    if keep_every_n_steps is not None:
        policies.append(EveryNSteps(keep_every_n_steps))
    if not policies:
        return KeepAll()
    return policies[0] if len(policies) == 1 else AnyOf(tuple(policies))


# -- save triggers --------------------------------------------------------------------


@runtime_checkable
class SaveTrigger(Protocol):
    def should_save(self, step: int, last_step: int | None, seconds_since_last: float | None) -> bool:
        """Whether to save at ``step``, given the last saved step and the time since it."""


@dataclass(frozen=True)
class SaveEveryNSteps:
    """Save at every step that is a multiple of ``n``: 0, n, 2n, ..."""

    n: int

    def __post_init__(self) -> None:
        _positive("save_every_n_steps", self.n)

    def should_save(self, step: int, last_step: int | None, seconds_since_last: float | None) -> bool:
        return step_is_due(step, self.n)


@dataclass(frozen=True)
class SaveEveryNSeconds:
    """Save when ``seconds`` have passed since the last save (or since the manager started)."""

    seconds: float

    def __post_init__(self) -> None:
        if isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float)) or not self.seconds > 0:
            raise InvalidArgumentError("save_every_seconds", f"must be a positive number, got {self.seconds!r}")

    def should_save(self, step: int, last_step: int | None, seconds_since_last: float | None) -> bool:
        return seconds_since_last is not None and seconds_since_last >= self.seconds


def save_triggers(save_every_n_steps: int | None = None, save_every_seconds: float | None = None) -> tuple[SaveTrigger, ...]:
    """The triggers of the manager's ``save_every_n_steps`` / ``save_every_seconds`` keywords."""
    triggers: list[SaveTrigger] = []
    if save_every_n_steps is not None:
        triggers.append(SaveEveryNSteps(save_every_n_steps))
    if save_every_seconds is not None:
        triggers.append(SaveEveryNSeconds(save_every_seconds))
    return tuple(triggers)


def due(triggers: Sequence[SaveTrigger], step: int, last_step: int | None = None,
        seconds_since_last: float | None = None) -> bool:
    """Whether any of ``triggers`` asks to save ``step``; asking without a trigger is an error.

    Without a trigger no step is ever due, so a loop asking ``should_save`` would silently
    never save: that raises instead.
    """
    if not triggers:
        raise InvalidArgumentError("should_save", NO_TRIGGER)
    return any(trigger.should_save(step, last_step, seconds_since_last) for trigger in triggers)
