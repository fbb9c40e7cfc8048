"""Mirror a run to TensorBoard event files.

Scalars keep their steps and wall times; the flattened config becomes the run's
hyperparameters (HParams dashboard) and the full config is shown as YAML in the Text
dashboard. Media go to TensorBoard's own dashboards: ``rp.Image`` to Images,
``rp.Histogram`` to Histograms and Distributions, ``rp.Text`` and ``rp.Table`` (as a
markdown table) to Text. By default the files go to ``<run dir>/tensorboard``, so ``tensorboard
--logdir runpoint`` shows every run of a root. Written with TensorBoard's own event
writer and protos: neither TensorFlow nor torch is needed.

When a resumed run rewinds to its checkpoint's step, the sink writes TensorBoard's own
restart marker (a ``SessionLog(START)`` event at the next step, what
``SummaryWriter(purge_step=...)`` writes): TensorBoard then hides what the stopped
attempt logged after the checkpoint, so each step shows once.

TensorBoard stores scalars as 32-bit floats (as every TensorBoard writer does);
runpoint's store keeps the exact 64-bit values.

Example::

    from runpoint.sinks import TensorBoardSink

    rp.init(project="digits", sinks=[TensorBoardSink(logdir="tb")])   # or sinks=["tensorboard"]
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Mapping

from .._util.optional import require
from ..config import flatten
from .base import SinkBatch, SinkOptions, SinkRun, as_markdown_table, media_file

_STATUS = {"completed": "STATUS_SUCCESS", "failed": "STATUS_FAILURE", "killed": "STATUS_ABORTED", "crashed": "STATUS_FAILURE"}


class TensorBoardSink:
    """Writes a run's scalars, config and hyperparameters as TensorBoard event files.

    Args:
        logdir: a directory shared by many runs; this run writes to
            ``<logdir>/<project>/<run name>-<run id>``. None: ``<run dir>/tensorboard``.
        options: how runpoint isolates the sink (:class:`SinkOptions`).
    """

    name = "tensorboard"
    package = "tensorboard"
    extra = "tensorboard"

    def __init__(self, logdir: str | os.PathLike[str] | None = None, *, options: SinkOptions | None = None) -> None:
        self.logdir = Path(logdir) if logdir is not None else None
        self.options = options or SinkOptions()
        self._writer: Any = None
        self._hparams: dict[str, Any] = {}
        self._run_dir = Path(".")

    def for_run(self) -> "TensorBoardSink":
        """A fresh sink with these settings: the same object may be given to many runs."""
        return TensorBoardSink(self.logdir, options=self.options)

    def start(self, run: SinkRun) -> Mapping[str, Any]:
        require("tensorboard", self.extra, "the tensorboard sink")
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._run_dir = run.dir
        if self.logdir is None:
            directory = run.dir / "tensorboard"
        else:
            directory = self.logdir / run.project / re.sub(r"[^A-Za-z0-9._-]+", "_", f"{run.name}-{run.id}")
        if self._writer is None:  # a retried start reuses the writer it opened
            directory.mkdir(parents=True, exist_ok=True)
            _after_existing_files(directory)
            self._writer = EventFileWriter(str(directory), max_queue_size=1000, flush_secs=5)
        logdir = str(directory.absolute())
        self._hparams = flatten(dict(run.config))
        self._write_hparams()
        # the config text goes to every new event directory, also that of a resumed run
        # whose first attempt had no TensorBoard sink or wrote elsewhere
        if run.config and run.previous.get("logdir") != logdir:
            self._write_text("config", _as_markdown(run.config))
        self._writer.flush()
        return {"logdir": logdir}

    def write(self, batch: SinkBatch) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        for step, wall, values in batch.rows():
            summary = Summary(value=[Summary.Value(tag=key, simple_value=value) for key, value in values.items()])
            self._writer.add_event(Event(wall_time=wall, step=step, summary=summary))
        for record in batch.media:
            value = self._media_value(record)
            if value is not None:
                self._writer.add_event(Event(wall_time=record.time, step=record.step, summary=Summary(value=[value])))
        if batch.params:
            self._hparams.update(batch.params)
            self._write_hparams()
        self._writer.flush()

    def rewind(self, step: int) -> None:
        """The run forgot its points after ``step``: TensorBoard purges the events from ``step + 1`` on."""
        from tensorboard.compat.proto.event_pb2 import Event, SessionLog

        # twice: TensorBoard's dashboard loader takes the first START of a logdir for the
        # session's own beginning and purges only at a later one (the other loader at each)
        for _ in range(2):
            start = SessionLog(status=SessionLog.START)
            self._writer.add_event(Event(wall_time=time.time(), step=step + 1, session_log=start))
        self._writer.flush()

    def finish(self, status: str) -> None:
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        end = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(_STATUS.get(status, "STATUS_UNKNOWN")))
        content = plugin_data_pb2.HParamsPluginData(session_end_info=end, version=metadata.PLUGIN_DATA_VERSION)
        self._add_plugin_summary(metadata.SESSION_END_INFO_TAG, metadata.PLUGIN_NAME, content.SerializeToString())
        self._writer.flush()
        self._writer.close()

    # -- helpers -----------------------------------------------------------------------

    def _media_value(self, record: Any) -> Any:
        from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary

        data = record.data
        if record.kind == "image":
            png = media_file(record, self._run_dir)
            if png is None:
                return None
            image = Summary.Image(height=data["height"], width=data["width"], colorspace=data["channels"],
                                  encoded_image_string=png)
            return Summary.Value(tag=record.key, image=image)
        if record.kind == "histogram":
            edges, counts = data["edges"], data["counts"]
            number = float(sum(counts))
            mean, std = data.get("mean"), data.get("std")
            histogram = HistogramProto(
                min=data["min"] if data.get("min") is not None else edges[0],
                max=data["max"] if data.get("max") is not None else edges[-1],
                num=number, sum=(mean or 0.0) * number, sum_squares=((std or 0.0) ** 2 + (mean or 0.0) ** 2) * number,
                bucket_limit=edges[1:], bucket=counts,
            )
            return Summary.Value(tag=record.key, histo=histogram)
        if record.kind in {"text", "table"}:
            text = data["text"] if record.kind == "text" else as_markdown_table(data["columns"], data["rows"])
            return self._text_value(record.key, text)
        return None

    def _text_value(self, tag: str, text: str) -> Any:
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.text import metadata

        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_STRING, string_val=[text.encode("utf-8")], tensor_shape=tensor_shape_pb2.TensorShapeProto()
        )
        return Summary.Value(tag=tag, metadata=metadata.create_summary_metadata(None, None), tensor=tensor)

    def _write_hparams(self) -> None:
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2

        start = plugin_data_pb2.SessionStartInfo()
        for key, value in self._hparams.items():
            if value is None:
                continue
            if isinstance(value, bool):
                start.hparams[key].bool_value = value
            elif isinstance(value, (int, float)):
                start.hparams[key].number_value = value
            elif isinstance(value, str):
                start.hparams[key].string_value = value
            else:
                start.hparams[key].string_value = json.dumps(value, default=str)
        content = plugin_data_pb2.HParamsPluginData(session_start_info=start, version=metadata.PLUGIN_DATA_VERSION)
        self._add_plugin_summary(metadata.SESSION_START_INFO_TAG, metadata.PLUGIN_NAME, content.SerializeToString())

    def _write_text(self, tag: str, text: str) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[self._text_value(tag, text)])
        self._writer.add_event(Event(wall_time=time.time(), step=0, summary=summary))

    def _add_plugin_summary(self, tag: str, plugin: str, content: bytes) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata

        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin, content=content))
        self._writer.add_event(Event(wall_time=time.time(), step=0, summary=Summary(value=[Summary.Value(tag=tag, metadata=meta)])))


def _after_existing_files(directory: Path) -> None:
    """Wait (at most ~1 s) until a new event file sorts after those in ``directory``.

    TensorBoard reads a directory's event files in name order, and a name starts with
    the second it was created in: an attempt resumed within the second its killed
    predecessor started must not be read before it (its restart marker would come first).
    """
    latest = 0
    for path in directory.glob("events.out.tfevents.*"):
        stamp = path.name.split(".")[3]
        if stamp.isdigit():
            latest = max(latest, int(stamp))
    deadline = time.monotonic() + 1.5
    while int(time.time()) <= latest and time.monotonic() < deadline:
        time.sleep(0.05)


def _as_markdown(config: Mapping[str, Any]) -> str:
    from .._util.yaml import run_config_text

    body = run_config_text(dict(config))
    return "\n".join("    " + line for line in body.splitlines())  # a markdown code block
