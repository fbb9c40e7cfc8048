"""``rp.init`` on every rank of a multi-rank job: one run, created or resumed once.

With a process group, the ranks meet in the group's key-value store, never in a
collective: a script (or an integration) that calls ``rp.init`` on rank 0 alone must not
hang. Each rank publishes its config's hash; rank 0 waits a few seconds
(:data:`ARRIVAL_WAIT_S`) for the others', and if they differ raises, and tells every rank,
before anything is created (naming the ranks and keys). Then rank 0 creates or resumes
the run with every check of a single process and publishes the outcome: the run's id, or
its error, which the other ranks raise too. A rank that arrives after rank 0 stopped
waiting compares its config with rank 0's itself; a difference fails the run, naming it.

Without a group the ranks cannot talk, so they meet on a run id: ``id=`` or one derived
from torchrun's job id. Rank 0 creates (or resumes) that run; the others poll the store
until rank 0's row of this attempt is there, for at most :data:`JOIN_TIMEOUT_S`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from .._util.ids import job_run_id
from ..config import config_hash, flatten
from ..distributed import RankContext, arrivals, publish, receive
from ..errors import InvalidArgumentError, RunpointError
from ..store.base import RunStatus
from ._open import OpenRequest, join_run, open_run
from .liveness import heartbeat_timeout
from .ranks import RankRole
from .run import Run

JOIN_TIMEOUT_ENV = "RUNPOINT_RANK_JOIN_TIMEOUT"
JOIN_TIMEOUT_S = 120.0
GROUP_JOIN_TIMEOUT_S = 600.0  # with a group, rank 0's error reaches the others at once; this bounds a rank 0 that never calls
ARRIVAL_WAIT_ENV = "RUNPOINT_RANK_ARRIVAL_WAIT"
ARRIVAL_WAIT_S = 5.0  # how long rank 0 waits for the others' configs before it opens the run without comparing
# rp.init calls of this process, by project: the ranks make them in the same order (counted by project so
# that a run rank 0 records alone, as integrations do, does not shift the count of the runs after it)
_calls: dict[str, int] = {}
logger = logging.getLogger("runpoint")


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
    # long: the one place rank 0 and the other ranks meet at rp.init; split, it reads worse
    _calls[request.project] = _calls.get(request.project, 0) + 1
    key = f"init/{ctx.restart}/{request.project}/{_calls[request.project]}"
    mine = {"config": config_hash(request.masked), "params": _jsonable(flatten(request.masked)), "process": _process(ctx)}
    publish(f"{key}/arrived/{ctx.rank}", mine)
    if ctx.rank != 0:
        return _join_rank_zero(ctx, request, key, mine, role)
    wait = float(os.environ.get(ARRIVAL_WAIT_ENV) or ARRIVAL_WAIT_S)
    missing = set(arrivals(f"{key}/arrived", range(1, ctx.world_size), timeout=wait))
    everyone = [mine] + [receive(f"{key}/arrived/{rank}", 1.0) for rank in range(1, ctx.world_size)
                         if rank not in missing]
    if missing:
        logger.info("runpoint: ranks %s had not called rp.init %g s after rank 0; rank 0 opens the run, "
                    "they join it when they do", sorted(missing), wait)
    try:
        if any(each["config"] != mine["config"] for each in everyone):
            raise InvalidArgumentError("config", _config_differences([each["params"] for each in everyone],
                                                                     [each["process"]["rank"] for each in everyone]))
        request.meta = {**request.meta, "distributed": {**ctx.describe(), "ranks": [e["process"] for e in everyone]}}
        run = open_run(request, resume, run_id, dataclasses.replace(role, expected=len(everyone)))
    except BaseException as exc:
        publish(key, {"error": f"{type(exc).__name__}: {exc}", "kind": type(exc).__name__})
        raise
    publish(key, {"id": run.id, "next_step": run.step, "config": mine["config"], "params": mine["params"],
                  "expected": len(everyone)})
    return run


def _join_rank_zero(ctx: RankContext, request: OpenRequest, key: str, mine: dict[str, Any], role: RankRole) -> Run:
    """Rank > 0: the run rank 0 opened (or its error, raised here too)."""
    timeout = float(os.environ.get(JOIN_TIMEOUT_ENV) or GROUP_JOIN_TIMEOUT_S)
    outcome = receive(key, timeout, waiting_for=f"rank 0 to call rp.init (${JOIN_TIMEOUT_ENV} sets how long)")
    if "error" in outcome:
        message = f"rank 0 could not open the run: {outcome['error']}"
        if outcome["kind"] == "InvalidArgumentError":  # bad input: the same kind of error on every rank
            raise InvalidArgumentError("rp.init", message)
        raise RunpointError(message)
    if outcome["config"] != mine["config"]:  # this rank came late: rank 0 could not compare before creating
        message = _config_differences([outcome["params"], mine["params"]], [0, ctx.rank])
        request.store.set_status(outcome["id"], RunStatus.FAILED, error=f"rank {ctx.rank}: {message}",
                                 ended_at=time.time(), expect=[RunStatus.RUNNING])
        raise InvalidArgumentError("config", message)
    return join_run(request, outcome["id"], dataclasses.replace(role, expected=outcome["expected"]),
                    outcome["next_step"])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
            for key, value in params.items()}


_MISSING = object()


def _config_differences(configs: list[dict[str, Any]], numbers: list[int]) -> str:
    """Which ranks' flattened configs differ from rank 0's (``configs[0]``), and in which keys first."""
    base = configs[0]
    ranks = [rank for rank, config in zip(numbers, configs) if config != base]
    parts = []
    for rank in ranks[:3]:
        other = configs[numbers.index(rank)]
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
