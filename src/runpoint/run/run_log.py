"""A run's ``logs/runpoint.log`` (:mod:`runpoint.logs.run_log`): opened with the run, closed after its last event.

Example::

    start_run_log(paths, redactor)        # by rp.init, before the console capture starts
    run_opened(run)                       # "run.start" / "run.resume"
    run_closed(run.id, "completed", 12.5) # "run.finish"; close_run_log(run.id) after the closing hooks
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..artifacts.paths import RunPaths
from ..logs import stderr
from ..logs.redact import Redactor
from ..logs.run_log import emit, open_run_log

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger("runpoint.run")


def start_run_log(paths: RunPaths, redactor: Redactor | None, rank: int = 0) -> None:
    stderr.install()
    redact = redactor.redact if redactor is not None and redactor.active else None
    open_run_log(paths.run_id, paths.runpoint_log(rank), redact)


def run_opened(run: "Run") -> None:
    rank = run._role.rank if run._role is not None else 0
    if run.resume_count:
        emit(logger, logging.INFO, "run.resume", "runpoint: run %s resumed (attempt %d) at step %d", run.id,
             run.resume_count + 1, run.step, run_id=run.id, resume_count=run.resume_count, step=run.step, rank=rank)
    else:
        emit(logger, logging.INFO, "run.start", "runpoint: run %s started in %s", run.id, run.dir,
             run_id=run.id, project=run.project, path=str(run.dir), rank=rank)


def run_closed(run_id: str, status: str, seconds: float | None) -> None:
    """The "run.finish" event; the file stays open for what the closing hooks (the sync) still log."""
    emit(logger, logging.INFO, "run.finish", "runpoint: run %s ended %s", run_id, status,
         run_id=run_id, status=status, seconds=round(seconds, 3) if seconds is not None else None)
