"""Points the store could not take, kept in a file beside the run until it can.

When the writer gives up on a batch at ``finish()`` (a full disk, a store that stays
locked), its metric points and summary values go to ``<run dir>/unstored.jsonl`` (or, if
that cannot be written either, to the system's temporary directory), one JSON object per
batch. ``runpoint recover RUN`` stores them once there is room again and removes the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from array import array
from pathlib import Path
from typing import Any, Iterable

from ..store.base import MetricSeries, WriteBatch
from ..store.wire import alert_from_wire, alert_to_wire

SPILL_NAME = "unstored.jsonl"


def _encode(batch: WriteBatch) -> str:
    metrics = {
        key: {"steps": list(series.steps), "values": list(series.values), "times": list(series.times)}
        for key, series in batch.metrics.items()
    }
    record = {"metrics": metrics, "summary": batch.summary, "sequence": batch.sequence,
              "alerts": [alert_to_wire(alert) for alert in batch.alerts]}
    return json.dumps(record, default=str)  # NaN/Inf as JSON5 literals


def write_spill(batches: Iterable[WriteBatch], run_dir: Path, run_id: str) -> Path | None:
    """Append ``batches`` to the run's spill file; None when no file could be written anywhere."""
    text = "".join(_encode(batch) + "\n" for batch in batches)
    for target in (run_dir / SPILL_NAME, Path(tempfile.gettempdir()) / f"runpoint-{run_id}-{SPILL_NAME}"):
        try:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            return target
        except OSError:
            continue
    return None


def read_spill_line(line: str, where: str = "") -> WriteBatch:
    """One batch of a spill file, ready for ``Store.write``."""
    try:
        record: dict[str, Any] = json.loads(line)
        metrics = {
            key: MetricSeries(array("q", m["steps"]), array("d", m["values"]), array("d", m["times"]))
            for key, m in record.get("metrics", {}).items()
        }
        sequence = record.get("sequence")  # the batch's idempotency key: recovering twice stores it once
        if sequence is not None and (isinstance(sequence, bool) or not isinstance(sequence, int)):
            raise TypeError(f"sequence {sequence!r} is not an integer")
        alerts = [alert_from_wire(value, "alerts") for value in record.get("alerts") or []]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: not a runpoint spill record ({exc})") from None
    return WriteBatch(metrics=metrics, summary=dict(record.get("summary", {})), sequence=sequence, alerts=alerts)


def spill_candidates(run_dir: Path, run_id: str) -> list[Path]:
    """Where a run's spill files may be, existing ones only."""
    paths = [run_dir / SPILL_NAME, Path(tempfile.gettempdir()) / f"runpoint-{run_id}-{SPILL_NAME}"]
    return [path for path in paths if path.is_file()]
