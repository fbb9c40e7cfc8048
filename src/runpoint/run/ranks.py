"""A run recorded by every rank of a multi-rank job: what each rank stores, and how the run ends.

One run per job: rank 0 creates (or resumes) it, every other rank opens the same run
(:mod:`runpoint.run._job`). Config, params, tags, meta and summary are written by rank 0
only; a rank's ``run.log`` is stored only when asked (``log_ranks="all"``), under
``<key>@rank<N>`` (:func:`rank_key`).

Each rank has a row in the store (:class:`~runpoint.store.base.RankRecord`) that its writer
heartbeats. When a rank ends (:func:`finish_rank`) it records its own outcome there; then:

- failed or killed: the run becomes ``crashed`` naming a rank whose process is gone, if one
  is, else failed/killed "rank N: ..."; by compare-and-set from ``running``, so the first
  cause wins;
- completed: the run becomes completed only once every rank's row is completed, set by
  whichever rank finishes last (with a process group: every rank that had called
  ``rp.init`` when rank 0 opened the run, and any that joined since).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError
from ..store.base import RunStatus, Store
from .liveness import dead_rank

LOG_RANKS = ("zero", "all")


@dataclass(frozen=True)
class RankRole:
    """This process's part in a run recorded by a multi-rank job."""

    rank: int
    world_size: int
    local_rank: int
    host: str
    log_ranks: str = "zero"  # "zero": only rank 0's run.log is stored; "all": every rank's, as key@rankN
    job: str | None = None  # which attempt: torchrun's job id and restart count
    # how many ranks' rows the run waits for before it is completed: all of them, or with a
    # process group those that had called rp.init when rank 0 opened the run (a rank-0-only run: 1)
    expected: int | None = None

    @property
    def suffix(self) -> str | None:
        """What rank N adds to the keys it stores (``@rank2``); None on rank 0, whose keys stay plain."""
        return f"@rank{self.rank}" if self.rank else None


def check_log_ranks(argument: str, value: Any) -> str:
    if value not in LOG_RANKS:
        raise InvalidArgumentError(argument, f"must be 'zero' (only rank 0's points are stored) or 'all', got {value!r}")
    return str(value)


def rank_key(key: str, rank: int) -> str:
    """The key under which rank ``rank`` stores ``key``: the key itself on rank 0, ``key@rank<N>`` elsewhere.

    Example::

        rank_key("train/loss", 3)   # "train/loss@rank3"
    """
    return f"{key}@rank{rank}" if rank else key


def with_suffix(values: dict[str, Any], suffix: str) -> dict[str, Any]:
    return {key + suffix: value for key, value in values.items()}


def _cause(rank: int, status: RunStatus, error: str | None) -> str:
    return f"rank {rank}: {error or status.value}"


def finish_rank(store: Store, run_id: str, role: RankRole, status: RunStatus, error: str | None,
                ended_at: float) -> RunStatus:
    """Record how this rank ended and, where it decides it, the run's status; returns the run's status now."""
    store.set_rank_status(run_id, role.rank, status, error=error, ended_at=ended_at)
    ranks = store.list_ranks(run_id)
    if status is RunStatus.COMPLETED:
        expected = role.expected if role.expected is not None else role.world_size
        if len(ranks) >= expected and all(rank.status is RunStatus.COMPLETED for rank in ranks):
            # this rank finished last (of those that joined): the job completed
            store.set_status(run_id, RunStatus.COMPLETED, ended_at=ended_at, expect=[RunStatus.RUNNING])
    else:
        others = [rank for rank in ranks if rank.rank != role.rank]
        # a rank that died makes the others' collectives fail, and torchrun stops them with
        # SIGTERM: the dead one is the cause (this rank's own error stays in its row)
        died = dead_rank([rank for rank in others if rank.status is RunStatus.RUNNING], ended_at)
        if died is not None:
            store.set_status(run_id, RunStatus.CRASHED, error=died, ended_at=ended_at, expect=[RunStatus.RUNNING])
        else:
            store.set_status(run_id, status, error=_cause(role.rank, status, error), ended_at=ended_at,
                             expect=[RunStatus.RUNNING])
    return store.get_run(run_id).status
