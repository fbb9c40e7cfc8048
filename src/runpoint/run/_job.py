"""``rp.init`` on every rank of a multi-rank job: one run, created or resumed once.

With a process group, the ranks first compare their configs (all-gather of the masked
config's hash; a difference raises on every rank, naming the ranks and keys, before
anything is created), then rank 0 creates or resumes the run with every check of a
single process and :func:`~runpoint.distributed.share_outcome` hands the outcome to the
others (a failure raises on every rank), who then join it.

Without a group the ranks cannot talk, so they meet on a run id: ``id=`` or one derived
from torchrun's job id. Rank 0 creates (or resumes) that run; the others poll the store
until rank 0's row of this attempt is there, for at most :data:`JOIN_TIMEOUT_S`.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .._util.ids import job_run_id
from ..config import config_hash, flatten
from ..distributed import RankContext, all_gather_objects, share_outcome
from ..errors import InvalidArgumentError, RunpointError
from ..store.base import RunStatus
from ._open import OpenRequest, join_run, open_run
from .liveness import heartbeat_timeout
from .ranks import RankRole
from .run import Run

JOIN_TIMEOUT_ENV = "RUNPOINT_RANK_JOIN_TIMEOUT"
JOIN_TIMEOUT_S = 120.0


def open_in_job(ctx: RankContext, request: OpenRequest, resume: str | None, run_id: str | None, log_ranks: str) -> Run:
    """This rank's :class:`Run` of the job's one run."""
    role = RankRole(rank=ctx.rank, world_size=ctx.world_size, local_rank=ctx.local_rank, host=ctx.host,
                    log_ranks=log_ranks, job=f"{ctx.job_id}/{ctx.restart}" if ctx.job_id else None)
    if ctx.group_ready:
        return _with_group(ctx, request, resume, run_id, role)
    return _without_group(ctx, request, resume, run_id, role)


def _process(ctx: RankContext) -> dict[str, Any]:
    return {"rank": ctx.rank, "local_rank": ctx.local_rank, "host": ctx.host, "pid": os.getpid()}


def _with_group(ctx: RankContext, request: OpenRequest, resume: str | None, run_id: str | None, role: RankRole) -> Run:
    everyone = all_gather_objects({"config": config_hash(request.masked), "process": _process(ctx)})
    if len({each["config"] for each in everyone}) > 1:  # every rank sees it: all take the second gather
        raise InvalidArgumentError("config", _config_differences(all_gather_objects(flatten(request.masked))))
    request.meta = {**request.meta, "distributed": {**ctx.describe(), "ranks": [each["process"] for each in everyone]}}
    opened: list[Run] = []

    def open_on_rank_zero() -> dict[str, Any]:
        opened.append(open_run(request, resume, run_id, role))
        return {"id": opened[0].id, "next_step": opened[0].step}

    shared = share_outcome(open_on_rank_zero)
    if opened:
        return opened[0]
    return join_run(request, shared["id"], role, shared["next_step"])


_MISSING = object()


def _config_differences(configs: list[dict[str, Any]]) -> str:
    """Which ranks' flattened configs differ from rank 0's, and in which keys first."""
    base = configs[0]
    ranks = [rank for rank, config in enumerate(configs) if config != base]
    parts = []
    for rank in ranks[:3]:
        other = configs[rank]
        keys = sorted(key for key in set(base) | set(other) if base.get(key, _MISSING) != other.get(key, _MISSING))
        shown = ", ".join(f"{key} (rank 0: {base.get(key, '<missing>')!r}, rank {rank}: {other.get(key, '<missing>')!r})"
                          for key in keys[:3])
        parts.append(f"rank {rank} differs in {shown or 'the order of its values'}")
    named = ", ".join(str(rank) for rank in ranks)
    return (f"the ranks of this job were given different configs: rank{'s' if len(ranks) > 1 else ''} {named} "
            f"differ{'' if len(ranks) > 1 else 's'} from rank 0 ({'; '.join(parts)}); every rank must pass the same "
            "config to rp.init, so no run was created")


def _without_group(ctx: RankContext, request: OpenRequest, resume: str | None, run_id: str | None,
                   role: RankRole) -> Run:
    if resume == "latest":
        raise InvalidArgumentError(
            "resume", "resume='latest' in a multi-rank job needs torch.distributed's process group, so that rank 0 "
            "can tell the others which run it found: call torch.distributed.init_process_group before rp.init, "
            "or resume by run id",
        )
    if resume not in (None, "allow") and run_id is None:
        run_id = resume  # resume=<id>: every rank knows the id already
    if run_id is None and ctx.job_id is not None:
        run_id = job_run_id(ctx.job_id, request.project)
        if resume is None and ctx.restart > 0:
            resume = "allow"  # torchrun restarted the job: continue its run
    if run_id is None:
        raise InvalidArgumentError(
            "id", f"rank {ctx.rank} of a {ctx.world_size}-rank job cannot tell which run is the job's: call "
            "torch.distributed.init_process_group before rp.init (rank 0 then creates the run and tells the "
            "others), or pass the same id= on every rank",
        )
    request.meta = {**request.meta, "distributed": {**ctx.describe(), "ranks": [_process(ctx)], "start_step": 0}}
    if ctx.rank == 0:
        return open_run(request, resume, run_id, role)
    _wait_for_rank_zero(request, run_id, role)
    return join_run(request, run_id, role, None)


def _wait_for_rank_zero(request: OpenRequest, run_id: str, role: RankRole) -> None:
    """Poll until rank 0 of this attempt has opened ``run_id``; a clear error after the timeout."""
    timeout = float(os.environ.get(JOIN_TIMEOUT_ENV) or JOIN_TIMEOUT_S)
    began = time.time()
    deadline = time.monotonic() + timeout
    while True:
        zero = next((rank for rank in request.store.list_ranks(run_id) if rank.rank == 0), None)
        # this attempt's row (rank 0 may have finished already), or without a job id a fresh one
        if zero is not None and (zero.job == role.job if role.job is not None else
                                 zero.status is RunStatus.RUNNING and zero.started_at > began - heartbeat_timeout()):
            return
        if time.monotonic() > deadline:
            raise RunpointError(
                f"rank {role.rank}: rank 0 did not start run {run_id} within {timeout:g} s "
                f"(${JOIN_TIMEOUT_ENV} sets how long to wait); did rank 0 fail? Its output says why"
            )
        time.sleep(0.1)
