"""How a run is closed out once :meth:`Run.finish <runpoint.run.run.Run.finish>` has run its hooks.

The writer is stopped and replaced by :class:`FinishedWriter` (so that a later ``log``
fails clearly); the points the store would not take are spilled to a file; the final
status goes to the store, ``meta.json`` and the sinks; the terminal and the store's
connections are given back.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._util.fs import write_atomic
from ..errors import RunpointError
from ..logs.run_log import close_run_log
from ..store.base import RunStatus
from . import lifecycle
from .ranks import finish_rank
from .run_log import run_closed
from .writer import Writer

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger("runpoint")


class FinishedWriter:
    """Stands in for the writer once a run is finished, so that ``log`` fails clearly."""

    def __init__(self, run_id: str) -> None:
        self._run_id = run_id

    def put(self, *_: Any) -> None:
        raise RunpointError(f"run {self._run_id} is finished; start or resume a run to log more")

    set_summary = delete_summary = add_params = put_internal = add_alert = put

    def rewind(self, after_step: int, *, wait: bool = True) -> int:
        self.put()
        return 0

    def flush(self, timeout: float | None = None) -> bool:
        return True


def close_run(run: Run, final: RunStatus, error: str | None) -> None:
    """Stop ``run``'s writer and record ``final`` (FAILED instead if points had to be spilled)."""
    writer = run._writer
    run._writer = FinishedWriter(run.id)
    try:
        if isinstance(writer, Writer) and not writer.close(timeout=120):
            logger.error("runpoint: run %s finished with %d points not yet stored", run.id, writer.pending)
        if isinstance(writer, Writer) and writer.unstored:  # the store gave up: not "completed"
            final, error = RunStatus.FAILED, spill_unstored(writer, run._paths.dir, run.id)
            run._status = final
        run.summary._writer = run._writer  # type: ignore[assignment]  # setting a value now raises
        ended = time.time()
        if run._role is None:
            run._store.set_status(run.id, final, error=error, ended_at=ended)
            write_end_of_meta(run.meta, run._paths.meta, ended, final)
        else:  # one rank of a job: its own row, and the run's status where this rank decides it
            status = finish_rank(run._store, run.id, run._role, final, error, ended)
            if run._role.rank == 0:  # meta.json is rank 0's; the store has the run's last word
                write_end_of_meta(run.meta, run._paths.meta, ended, final if status is RunStatus.RUNNING else status)
        if run._sinks is not None:
            run._sinks.close(final.value)  # bounded by each sink's finish_timeout
    finally:  # even when the store fails: give the terminal back, forget the run at exit
        if run._console is not None:
            run._console.stop()
        lifecycle.unregister(run)
        # The writer thread is gone: give back the connections (file descriptors); a
        # later read (run.summary, run.store) opens one again.
        release = getattr(run._store, "_release_connections", None)
        if release is not None:
            release()
    started = run.meta.get("started_at")
    run_closed(run.id, final.value, time.time() - started if isinstance(started, (int, float)) else None)
    for hook in run._after_close:  # e.g. the last pass of the replicator that ships the run to a server
        try:
            hook()
        except Exception:
            logger.exception("runpoint: a closing hook of run %s failed", run.id)
    close_run_log(run.id)  # after the hooks: the sync's last events belong to the run too


def spill_unstored(writer: Writer, run_dir: Path, run_id: str) -> str:
    """Save the points the store did not take; returns the reason the run failed."""
    from .spill import write_spill

    count = writer.points_unstored
    spilled = write_spill(writer.unstored, run_dir, run_id)
    if spilled is None:
        reason = f"{count} logged points could not be stored, nor saved to a file: they are lost"
    else:
        reason = (f"{count} logged points could not be stored; they were saved to {spilled}: "
                  f"free some space, then `runpoint recover {run_id}` stores them")
    logger.error("runpoint: run %s: %s", run_id, reason)
    return reason


def write_end_of_meta(meta: dict[str, Any], path: Path, ended: float, status: RunStatus) -> None:
    """Add the end time and the final status to ``meta`` and rewrite ``meta.json``."""
    meta["ended_at"] = ended
    meta["status"] = status.value
    try:
        write_atomic(path, json.dumps(meta, indent=2, default=str))
    except OSError as exc:
        logger.warning("runpoint: could not update %s: %s", path, exc)


def outcome_at_exit(signal_received: int | None) -> tuple[RunStatus, str | None]:
    """How a run still open when the interpreter exits ends: failed (uncaught error), killed or completed."""
    uncaught = lifecycle.uncaught_exception()
    if uncaught is not None:
        kind, value, tb = uncaught
        if issubclass(kind, KeyboardInterrupt):
            return RunStatus.KILLED, "KeyboardInterrupt"
        return RunStatus.FAILED, "".join(traceback.format_exception(kind, value, tb))
    if signal_received is not None:
        return RunStatus.KILLED, f"signal {signal_received}"
    return RunStatus.COMPLETED, None


def outcome_of_block(kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None,
                     signal_received: int | None) -> tuple[RunStatus, str | None]:
    """How a run ends when its ``with`` block exits with ``kind`` (None: normally)."""
    if kind is None:
        if signal_received is not None:
            return RunStatus.KILLED, f"signal {signal_received}"
        return RunStatus.COMPLETED, None
    if issubclass(kind, KeyboardInterrupt):
        return RunStatus.KILLED, "KeyboardInterrupt"
    if issubclass(kind, SystemExit) and signal_received is not None:
        return RunStatus.KILLED, f"signal {signal_received}"
    if issubclass(kind, SystemExit) and isinstance(value, SystemExit) and value.code in (0, None):
        return RunStatus.COMPLETED, None
    return RunStatus.FAILED, "".join(traceback.format_exception(kind, value, tb))
