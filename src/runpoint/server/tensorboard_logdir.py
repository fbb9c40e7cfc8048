"""Where TensorBoard finds a run: its TensorBoard sink's directory, or an export of its scalars.

A run logged with the TensorBoard sink recorded its event directory in the run's
``external.json`` (``tensorboard.external.logdir``; by default ``<run dir>/tensorboard``):
TensorBoard reads that, with everything the sink wrote (media, hparams). Any other run is
exported on demand: its scalars, from the store, as event files under
``<root>/.tensorboard/exports/<run id>/<run name>/``. The export is incremental: a later one
(the run went on) appends what was logged after the steps the last one wrote, in a new
event file that sorts after the others, which TensorBoard reads on its next reload.

Example::

    found = run_logdir(dashboard, run)          # RunLogdir(path=..., source="sink") or None
    found = found or export_scalars(dashboard.store, run, dashboard.root / CACHE_DIR)
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .._util.fs import write_atomic
from ..store.base import RunRecord, Store
from .context import Dashboard

CACHE_DIR = ".tensorboard"
_CURSOR = "export.json"


@dataclass(frozen=True)
class RunLogdir:
    """A directory of TensorBoard event files for a run, and whether its sink wrote it or runpoint exported it."""

    path: Path
    source: Literal["sink", "export"]


def safe_name(text: str) -> str:
    """A run's name as a directory name and a ``--logdir_spec`` label (no ``/``, ``:`` or ``,``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"


def run_logdir(ctx: Dashboard, run: RunRecord) -> RunLogdir | None:
    """The run's TensorBoard sink directory when it exists on this machine; None otherwise."""
    from ..errors import StoreError
    from ..sinks.hub import read_external

    try:
        run_dir = ctx.run_dir(run)
    except StoreError:  # a recorded directory outside the root: nothing of it is read
        return None
    entry = read_external(run_dir).get("tensorboard")
    recorded = entry.get("external", {}).get("logdir") if isinstance(entry, dict) else None
    for candidate in ([Path(recorded)] if isinstance(recorded, str) and recorded else []) + [run_dir / "tensorboard"]:
        if candidate.is_dir():
            return RunLogdir(candidate, "sink")
    return None


def export_dir(cache: Path, run: RunRecord) -> Path:
    """Where :func:`export_scalars` writes ``run``: TensorBoard is pointed at this directory."""
    return cache / "exports" / run.id


def export_scalars(store: Store, run: RunRecord, cache: Path) -> RunLogdir:
    """Write the run's scalars not exported yet as event files; the directory TensorBoard should read."""
    from ..errors import RunpointError

    try:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError:
        raise RunpointError("exporting to TensorBoard needs the tensorboard extra: pip install 'runpoint[tensorboard]'") \
            from None
    top = export_dir(cache, run)
    directory = top / safe_name(run.name)
    directory.mkdir(parents=True, exist_ok=True)
    cursor = _read_cursor(top)
    stats = store.metric_stats(run.id)
    pending = {key: s for key, s in stats.items() if s.last_step > cursor.get(key, -(2**63))}
    if not pending:
        return RunLogdir(top, "export")
    _after_existing_files(directory)
    writer = EventFileWriter(str(directory), max_queue_size=10_000, flush_secs=600)
    try:
        for key, stat in sorted(pending.items()):
            after = cursor.get(key)
            series = store.read_metric(run.id, key, min_step=None if after is None else after + 1)
            for step, value, at in series.points():
                summary = Summary(value=[Summary.Value(tag=key, simple_value=value)])
                writer.add_event(Event(wall_time=at, step=step, summary=summary))
            cursor[key] = max(stat.last_step, max(series.steps, default=stat.last_step))
    finally:
        writer.close()
    write_atomic(top / _CURSOR, json.dumps(cursor))
    return RunLogdir(top, "export")


def _read_cursor(top: Path) -> dict[str, int]:
    try:
        value = json.loads((top / _CURSOR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in value.items() if isinstance(v, int)} if isinstance(value, dict) else {}


def _after_existing_files(directory: Path) -> None:
    """Wait (under a second) until a new event file's name, which starts with the second, sorts last."""
    newest = max((int(p.name.split(".")[3]) for p in directory.glob("events.out.tfevents.*")
                  if p.name.split(".")[3].isdigit()), default=0)
    while int(time.time()) <= newest:
        time.sleep(0.05)
