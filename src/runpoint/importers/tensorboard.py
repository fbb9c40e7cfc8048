"""Import TensorBoard runs: every directory of event files under a logdir becomes a run.

Read with TensorBoard's own reader (``EventAccumulator``, no TensorFlow needed): scalars
written as ``simple_value`` (torch, tensorboardX, Keras) and as scalar tensors (TF2's
``tf.summary.scalar``) keep their steps and wall times; HParams become the config
(``model.lr`` becomes ``model: {lr: ...}``) and a session's end status the run's status.
Images, histograms and texts come in as runpoint media (:mod:`._tensorboard_media`);
audio, and images Pillow is needed for but missing, are counted in ``meta.json``.

Example::

    from runpoint.importers import tensorboard

    new_ids = tensorboard.import_runs("lightning_logs", root="runpoint", project="mnist")

or ``runpoint import tensorboard lightning_logs``.
"""

from __future__ import annotations

import math
import os
from array import array
from pathlib import Path
from typing import Any

from .._util.optional import require
from ..artifacts.paths import resolve_root
from ..errors import InvalidArgumentError
from ..store import MetricSeries, RunStatus, open_store
from ._common import ImportedRun, as_project, check_project, unflatten, write_run
from ._tensorboard_media import read_media

__all__ = ["import_runs"]

_STATUS = {"STATUS_SUCCESS": RunStatus.COMPLETED, "STATUS_FAILURE": RunStatus.FAILED, "STATUS_ABORTED": RunStatus.KILLED}


def import_runs(
    location: str, *, root: Path | str | None = None, project: str | None = None
) -> list[str]:
    """Import every run under the logdir ``location``; returns the ids of runs newly created.

    Runs imported before (same directory, same start time) are skipped. ``project``
    defaults to the logdir's name.

    Example::

        ids = import_runs("runs/", root="runpoint")
    """
    require("tensorboard", "tensorboard", "importing from TensorBoard")
    from tensorboard.backend.event_processing.io_wrapper import GetLogdirSubdirectories

    check_project(project)
    logdir = Path(os.fspath(location)).expanduser().absolute()
    if not logdir.is_dir():
        raise InvalidArgumentError("location", f"{logdir} is not a directory of TensorBoard logs")
    run_dirs = sorted(Path(d) for d in GetLogdirSubdirectories(str(logdir)))
    if not run_dirs:
        raise InvalidArgumentError("location", f"no TensorBoard event files (events.out.tfevents.*) under {logdir}")
    project = project or as_project(logdir.name, "tensorboard")
    store = open_store(resolve_root(root))
    created = []
    try:
        for run_dir in run_dirs:
            run = _read_run(logdir, run_dir, project)
            if run is not None:
                run_id = write_run(store, resolve_root(root), run)
                if run_id is not None:
                    created.append(run_id)
    finally:
        store.close()
    return created


def _read_run(logdir: Path, run_dir: Path, project: str) -> ImportedRun | None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(
        str(run_dir), size_guidance={"scalars": 0, "tensors": 0, "images": 0, "histograms": 0, "audio": 0}
    )
    accumulator.Reload()
    tags = accumulator.Tags()
    metrics: dict[str, MetricSeries] = {}
    for tag in tags["scalars"]:
        events = accumulator.Scalars(tag)
        metrics[tag] = MetricSeries(
            array("q", (e.step for e in events)), array("d", (e.value for e in events)),
            array("d", (e.wall_time for e in events)),
        )
    for tag in tags["tensors"]:
        if accumulator.SummaryMetadata(tag).plugin_data.plugin_name == "scalars" and tag not in metrics:
            series = _tensor_scalars(accumulator.Tensors(tag))
            if series is not None:
                metrics[tag] = series
    config, status = _hparams(accumulator)
    starts = [series.times[0] for series in metrics.values() if len(series)]
    try:
        starts.append(accumulator.FirstEventTimestamp())  # the writer's file_version event
    except ValueError:  # no events at all
        pass
    if not starts:
        return None
    first = min(starts)
    ends = [series.times[-1] for series in metrics.values() if len(series)]
    relative = run_dir.relative_to(logdir).as_posix()
    name = logdir.name if relative == "." else relative
    media, skipped = read_media(accumulator, tags)
    return ImportedRun(
        source="tensorboard", source_id=str(run_dir), project=project, name=name,
        created_at=first, ended_at=max(ends) if ends else first, status=status, config=config, metrics=metrics,
        media=media,
        origin={"logdir": str(logdir), "run_dir": str(run_dir), **({"not_imported": skipped} if skipped else {})},
    )


def _tensor_scalars(events: list[Any]) -> MetricSeries | None:
    from tensorboard.util import tensor_util

    series = MetricSeries()
    for event in events:
        value = tensor_util.make_ndarray(event.tensor_proto)
        if value.size != 1 or value.dtype.kind not in "biuf":
            return None
        series.append(event.step, float(value.reshape(())), event.wall_time)
    return series


def _hparams(accumulator: Any) -> tuple[dict[str, Any], RunStatus]:
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    try:
        content = accumulator.PluginTagToContent(metadata.PLUGIN_NAME)
    except KeyError:
        return {}, RunStatus.COMPLETED
    params: dict[str, Any] = {}
    status = RunStatus.COMPLETED
    if metadata.SESSION_START_INFO_TAG in content:
        start = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG]).session_start_info
        for key, value in start.hparams.items():
            kind = value.WhichOneof("kind")
            if kind == "number_value":
                number = value.number_value
                params[key] = int(number) if number.is_integer() and math.isfinite(number) and abs(number) < 2**53 else number
            elif kind in {"string_value", "bool_value"}:
                params[key] = getattr(value, kind)
    if metadata.SESSION_END_INFO_TAG in content:
        end = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_END_INFO_TAG]).session_end_info
        status = _STATUS.get(api_pb2.Status.Name(end.status), RunStatus.COMPLETED)
    return unflatten(params), status
