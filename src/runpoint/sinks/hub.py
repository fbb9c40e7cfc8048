"""The sinks of one run: fed by the writer, finished with the run, recorded in ``external.json``.

``external.json`` in the run directory has one entry per sink::

    {"mlflow": {"status": "finished",
                "external": {"run_id": "4dc6...", "url": "http://127.0.0.1:5000/#/experiments/1/runs/4dc6..."},
                "points_sent": 3000, "points_dropped": 0, "failures": 0, "error": null}}

``external`` is what the sink's ``start`` returned (ids, links); the rest is runpoint's
account of how mirroring went, including why a sink was disabled. While the run goes on
the file is updated every ``progress_interval`` (``points_pending``: waiting for the sink);
``points_in_flight`` are points handed to a call that had not returned when runpoint gave
up on the sink. Entries of sinks not
used by a later attempt of the run are kept.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .._util.fs import write_atomic
from .._util.jsonable import dumps
from ..store.base import WriteBatch
from ._isolation import IsolatedSink
from .base import Sink, SinkBatch, SinkRun

if TYPE_CHECKING:
    from ..handle import RunHandle

logger = logging.getLogger("runpoint")

EXTERNAL_FILE = "external.json"
ABORT_WAIT_S = 5.0  # at most this long for a sink given up on to end its external run


def read_external(run_dir: Path) -> dict[str, Any]:
    """The ``external.json`` of a run directory; ``{}`` when there is none or it is unreadable."""
    try:
        data = json.loads((run_dir / EXTERNAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class SinkHub:
    """Feeds a run's committed batches to its sinks and closes them when the run ends.

    Example::

        hub = SinkHub(run, [TensorBoardSink()])
        run.add_batch_listener(hub.on_batch)
        ...
        hub.close("completed")
    """

    def __init__(self, run: "RunHandle", sinks: Sequence[Sink]) -> None:
        self._path = run.dir / EXTERNAL_FILE
        self._lock = threading.Lock()
        self._records = read_external(run.dir)
        base = SinkRun(
            id=run.id, project=run.project, name=run.name, dir=run.dir, config=run.config,
            tags=tuple(run.tags), notes=run.notes, group=run.group, resume_count=run.resume_count,
        )
        self.sinks: list[IsolatedSink] = []
        for sink in sinks:
            for_run = getattr(sink, "for_run", None)
            if callable(for_run):
                sink = for_run()  # one object per run: a sink given to a sweep serves each run apart
            previous = self._records.get(sink.name, {})
            earlier = previous.get("external") if isinstance(previous, dict) else None
            run_for_sink = replace(base, previous=earlier if isinstance(earlier, dict) else {})
            self.sinks.append(IsolatedSink(sink, run_for_sink, self._report))
        self._closed = False

    def on_batch(self, run_id: str, batch: WriteBatch) -> None:
        """The writer's listener: hand a committed batch to every sink (enqueue only)."""
        sink_batch = SinkBatch.from_write(batch)
        for sink in self.sinks:
            if sink_batch.is_empty():
                sink.check_hung()
            else:
                sink.submit(sink_batch)

    def rewind(self, step: int) -> None:
        """Tell every sink that the run forgot its points after ``step`` (in order with the batches)."""
        for sink in self.sinks:
            sink.submit_rewind(step)

    def close(self, status: str) -> None:
        """Let every sink send what is queued and finish, waiting at most each one's ``finish_timeout``."""
        if self._closed:
            return
        self._closed = True
        started = time.monotonic()
        for sink in self.sinks:
            sink.request_finish(status)
        for sink in self.sinks:
            sink.wait(started + sink.options.finish_timeout)
        abort_deadline = time.monotonic() + ABORT_WAIT_S
        for sink in self.sinks:  # a sink given up on may be ending its external run
            sink.wait_aborted(abort_deadline)
        self._write()

    def _report(self, sink: IsolatedSink) -> None:
        with self._lock:
            self._records[sink.name] = sink.record()
            self._write_locked()

    def _write(self) -> None:
        with self._lock:
            for sink in self.sinks:
                self._records[sink.name] = sink.record()
            self._write_locked()

    def _write_locked(self) -> None:
        try:
            write_atomic(self._path, dumps(self._records) + "\n")
        except OSError as exc:  # the run directory was removed, the disk is full...
            logger.debug("runpoint: could not write %s: %s", self._path, exc)
