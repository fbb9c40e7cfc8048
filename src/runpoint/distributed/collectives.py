"""The collectives runpoint uses, over the default process group (gloo or NCCL) or another.

Each takes ``group=``; without it, the group :func:`over` set for this thread, else the
default group. Checkpoints run theirs over a group of their own (:mod:`.groups`), so a save
committing on a background thread never interleaves with training's collectives.

Objects travel with ``torch.distributed``'s object collectives (pickled, between the
processes of one job, which trust each other). Every function must be called on every
rank, in the same order, as any collective.

:func:`share_outcome` is how one rank's decision reaches the others without anyone
hanging: rank 0 does the work, and its result *or its error* goes to every rank, so a
failure raises the same error everywhere instead of leaving the other ranks waiting.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

from ..errors import RunpointError

T = TypeVar("T")
_thread = threading.local()


@contextmanager
def over(group: Any) -> Iterator[None]:
    """Run this thread's runpoint collectives over ``group`` (None: the default group) inside the block.

    Example::

        with over(checkpoint_group()):
            step = broadcast_object(step)
    """
    previous = getattr(_thread, "group", None)
    _thread.group = group
    try:
        yield
    finally:
        _thread.group = previous


def active_group(group: Any = None) -> Any:
    """``group``, else the one :func:`over` set for this thread, else None (the default group)."""
    return group if group is not None else getattr(_thread, "group", None)


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RunpointError("this needs torch.distributed's process group: call torch.distributed.init_process_group first")
    return dist


def broadcast_object(value: T, src: int = 0, group: Any = None) -> T:
    """``value`` as rank ``src`` has it, on every rank."""
    dist = _dist()
    box = [value if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src, group=active_group(group))
    return box[0]  # type: ignore[return-value]


def all_gather_objects(value: Any, group: Any = None) -> list[Any]:
    """Every rank's ``value``, by rank, on every rank."""
    dist = _dist()
    group = active_group(group)
    gathered: list[Any] = [None] * dist.get_world_size(group)
    dist.all_gather_object(gathered, value, group=group)
    return gathered


def gather_objects(value: Any, dst: int = 0, group: Any = None) -> list[Any] | None:
    """Every rank's ``value``, by rank, on rank ``dst``; None elsewhere."""
    dist = _dist()
    group = active_group(group)
    here = dist.get_rank()
    gathered: list[Any] | None = [None] * dist.get_world_size(group) if here == dst else None
    dist.gather_object(value, gathered, dst=dst, group=group)
    return gathered


def barrier(group: Any = None) -> None:
    _dist().barrier(group=active_group(group))


class RemoteRankError(RunpointError):
    """Another rank failed at a step every rank takes together; its message, on this rank."""


def share_outcome(work: Callable[[], T], *, on: int = 0, group: Any = None) -> T:
    """Run ``work`` on rank ``on`` and give every rank its result, or raise its error on every rank.

    On rank ``on`` the original exception is raised; elsewhere a :class:`RemoteRankError`
    (or the same class when it can be rebuilt from its message) naming the rank.
    """
    dist = _dist()
    here = dist.get_rank()
    outcome: tuple[bool, Any] | None = None
    error: BaseException | None = None
    if here == on:
        try:
            outcome = (True, work())
        except BaseException as exc:  # the others must hear of it, or they wait forever
            error = exc
            outcome = (False, (type(exc).__name__, str(exc)))
    outcome = broadcast_object(outcome, src=on, group=group)
    assert outcome is not None
    if error is not None:
        raise error
    ok, value = outcome
    if ok:
        return value  # type: ignore[no-any-return]
    kind, message = value
    raise RemoteRankError(f"rank {on} failed: {kind}: {message}")


def same_everywhere(value: Any, what: str, group: Any = None) -> list[Any]:
    """All ranks' ``value``; raises on every rank, naming the ranks, if they differ."""
    values = all_gather_objects(value, group)
    if any(other != values[0] for other in values[1:]):
        differing = [rank for rank, other in enumerate(values) if other != values[0]]
        shown = ", ".join(f"rank {rank}: {values[rank]!r}" for rank in [0, *differing][:5])
        raise RunpointError(f"the ranks disagree on {what} ({shown})")
    return values


def max_everywhere(value: int, group: Any = None) -> int:
    """The largest of every rank's ``value``, on every rank (one all-reduce of one integer)."""
    import torch

    dist = _dist()
    box = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(box, op=dist.ReduceOp.MAX, group=active_group(group))
    return int(box.item())
