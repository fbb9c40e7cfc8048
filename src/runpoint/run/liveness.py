"""Telling a running run from a dead one.

A run is ``running`` in the store until its process says otherwise. A process killed with
SIGKILL (or the machine losing power) says nothing, so readers decide: a run whose
process on this host no longer exists, or whose heartbeat is older than
``RUNPOINT_HEARTBEAT_TIMEOUT`` seconds (default 60; writers beat every 5), has crashed.
The verdict is a compare-and-set on the heartbeat, and a writer that was merely slow
undoes it with its next heartbeat.

A heartbeat in the future was not written by a live writer of this clock (a record copied
from another machine, or forged): beyond :data:`FUTURE_SKEW_S` on this host, or beyond the
timeout for a run of another host (whose clock may differ a little), it counts as stale,
and nothing (stopping a run by its pid included) trusts it.

A run of a multi-rank job has a row per rank (:class:`~runpoint.store.base.RankRecord`):
it is dead when one of its ranks is (:func:`dead_rank`), and the verdict names that rank.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from typing import TYPE_CHECKING

from ..store.base import RankRecord, RunRecord, RunStatus

if TYPE_CHECKING:
    from ..store.base import Store

TIMEOUT_ENV = "RUNPOINT_HEARTBEAT_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
# How far ahead of this host's clock a heartbeat written on this host may be: the writer and
# the reader read one clock, so only a step of the clock (NTP) puts it ahead at all.
FUTURE_SKEW_S = 5.0


def heartbeat_timeout() -> float:
    try:
        return float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def process_alive(host: str | None, pid: int | None) -> bool | None:
    """True or False for a process of this host; None when it cannot be known here."""
    if pid is None or host != socket.gethostname():
        return None
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie has exited; it only waits for its parent to reap it
        with open(f"/proc/{pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return True


def heartbeat_in_future(run: RunRecord, now: float | None = None, timeout: float | None = None) -> bool:
    """Whether ``run``'s heartbeat lies further in the future than a clock could explain."""
    now = time.time() if now is None else now
    if run.host == socket.gethostname():
        skew = FUTURE_SKEW_S
    else:
        skew = heartbeat_timeout() if timeout is None else timeout
    return run.heartbeat_at - now > skew


def is_dead(run: RunRecord, now: float | None = None, timeout: float | None = None) -> bool:
    """Whether a ``running`` run's process is gone or silent for too long."""
    if run.status is not RunStatus.RUNNING:
        return False
    alive = process_alive(run.host, run.pid)
    if alive is False:
        return True
    now = time.time() if now is None else now
    if heartbeat_in_future(run, now, timeout):
        return True
    return now - run.heartbeat_at > (heartbeat_timeout() if timeout is None else timeout)


def dead_rank(ranks: list[RankRecord], now: float | None = None, timeout: float | None = None) -> str | None:
    """Why the run of these rank rows is dead ("rank 1 (pid 1234 on gpu3) died without finishing"), or None.

    A rank still ``running`` whose process is gone (same host) or whose heartbeat is stale
    is dead. When no rank is running any more but the run still is, the job lost ranks
    that never started, or the last rank died between its row and the run's status.
    """
    now = time.time() if now is None else now
    timeout = heartbeat_timeout() if timeout is None else timeout
    running = [rank for rank in ranks if rank.status is RunStatus.RUNNING]
    for rank in running:
        where = f"rank {rank.rank} (pid {rank.pid} on {rank.host})"
        if process_alive(rank.host, rank.pid) is False:
            return f"{where} died without finishing"
        if now - rank.heartbeat_at > timeout or (rank.host == socket.gethostname()
                                                  and rank.heartbeat_at - now > FUTURE_SKEW_S):
            return f"{where} stopped sending heartbeats without finishing"
    if ranks and not running:
        last_end = max(rank.ended_at or rank.heartbeat_at for rank in ranks)
        if now - last_end > timeout:
            return f"ranks {', '.join(str(r.rank) for r in ranks)} ended, but the job's other ranks never finished"
    return None


def run_is_dead(store: "Store", run: RunRecord, now: float | None = None) -> str | None:
    """Why a ``running`` run is dead, or None while it lives; multi-rank runs are judged by their ranks."""
    if run.status is not RunStatus.RUNNING:
        return None
    ranks = store.list_ranks(run.id)
    if ranks:
        return dead_rank(ranks, now)
    if is_dead(run, now):
        return "the process stopped without finishing the run (killed, or the machine went down)"
    return None


def reap_crashed(store: "Store", runs: list[RunRecord]) -> list[RunRecord]:
    """Mark the dead among ``runs`` as crashed in the store; returns ``runs`` updated."""
    now = time.time()
    updated = []
    read_only = getattr(store, "read_only", False)  # a store opened on a full disk: say it, store nothing
    for run in runs:
        ranks = store.list_ranks(run.id) if run.status is RunStatus.RUNNING else []
        if ranks:
            run = _reap_ranks(store, run, ranks, now, read_only)
        elif is_dead(run, now) and read_only:
            run = dataclasses.replace(run, status=RunStatus.CRASHED, ended_at=run.heartbeat_at)
        elif is_dead(run, now):
            changed = store.set_status(
                run.id, RunStatus.CRASHED, ended_at=min(run.heartbeat_at, now),  # a future heartbeat is no end time
                error="the process stopped without finishing the run (killed, or the machine went down)",
                expect=[RunStatus.RUNNING], heartbeat_before=run.heartbeat_at + 1e-6,
            )
            if changed:
                run = store.get_run(run.id)
        updated.append(run)
    return updated


def _reap_ranks(store: "Store", run: RunRecord, ranks: list[RankRecord], now: float, read_only: bool) -> RunRecord:
    why = dead_rank(ranks, now)
    if why is None:
        return run
    if read_only:
        return dataclasses.replace(run, status=RunStatus.CRASHED, ended_at=run.heartbeat_at, error=why)
    if store.set_status(run.id, RunStatus.CRASHED, error=why, ended_at=now, expect=[RunStatus.RUNNING]):
        return store.get_run(run.id)
    return run
