"""Mirror a run to MLflow: a tracking server (``http://...``) or a local store (``sqlite:///...``).

The run becomes an MLflow run in the experiment named after the project, with the
flattened config as params, the full config as the artifact ``runpoint/config.yaml``,
runpoint's tags and ids as MLflow tags, every scalar with its step and wall time, and
the final status. Resuming the runpoint run continues the same MLflow run. Uses
``MlflowClient`` only, so MLflow's global "active run" is left alone.

MLflow restricts names: characters other than letters, digits and ``_ - . / : space``
become ``_``. Numeric summary values are logged as metrics, others as tags
``runpoint.summary.<key>``. ``rp.Image`` values become MLflow's stepped images (the
run's Images tab); histograms and tables become JSON artifacts and texts text artifacts
under ``runpoint/media/<key>/``.

Example::

    from runpoint.sinks import MLflowSink

    rp.init(project="digits", sinks=[MLflowSink(tracking_uri="http://127.0.0.1:5000")])
    # or sinks=["mlflow"] with $MLFLOW_TRACKING_URI set
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from .._optional import require
from .._uri import without_credentials
from ..config import flatten
from .base import SinkBatch, SinkOptions, SinkRun, media_file

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "killed": "KILLED", "crashed": "FAILED"}
_BAD_CHARS = re.compile(r"[^/\w.\- :]")
MAX_METRICS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000


def mlflow_key(key: str) -> str:
    """``key`` made acceptable to MLflow as a metric or param name."""
    cleaned = _BAD_CHARS.sub("_", key)
    parts = ["__" if part == ".." else part for part in cleaned.split("/") if part not in {"", "."}]
    return "/".join(parts)[:250] or "_"


class MLflowSink:
    """Logs a run to MLflow.

    Args:
        tracking_uri: ``http://host:port`` of a server, ``sqlite:///path.db``, or None for
            MLflow's default (``$MLFLOW_TRACKING_URI``, else its local default).
        experiment: the MLflow experiment; None: the runpoint project's name.
        log_config_artifact: also store the full config as ``runpoint/config.yaml``.
        options: how runpoint isolates the sink (:class:`SinkOptions`).
    """

    name = "mlflow"
    package = "mlflow"
    extra = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        log_config_artifact: bool = True,
        options: SinkOptions | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.log_config_artifact = log_config_artifact
        self.options = options or SinkOptions()
        self._client: Any = None
        self._run_id: str | None = None
        self._started = False
        self._created = False  # this object opened a new MLflow run: it gets the params and config
        self._last_step = 0
        self._sent_params: set[str] = set()
        self._run_dir = Path(".")

    def for_run(self) -> "MLflowSink":
        """A fresh sink with these settings: the same object may be given to many runs."""
        return MLflowSink(
            self.tracking_uri, self.experiment, log_config_artifact=self.log_config_artifact, options=self.options
        )

    def start(self, run: SinkRun) -> Mapping[str, Any]:
        mlflow = require("mlflow", self.extra, "the mlflow sink")
        self._run_dir = run.dir
        if self._client is None:
            self._client = mlflow.MlflowClient(tracking_uri=self.tracking_uri)
        client = self._client
        uri = without_credentials(client.tracking_uri)  # what external.json keeps: no password
        experiment_id = self._experiment_id(self.experiment or run.project)
        if self._run_id is None:  # a retried start continues where the failed one stopped
            previous = run.previous
            if previous.get("run_id") and previous.get("tracking_uri") == uri:
                self._run_id = str(previous["run_id"])
                client.update_run(self._run_id, status="RUNNING")
                self._sent_params.update(client.get_run(self._run_id).data.params)
            else:
                tags = {
                    "runpoint.run_id": run.id, "runpoint.project": run.project,
                    "runpoint.dir": str(run.dir), **{tag: "" for tag in run.tags},
                }
                if run.group:
                    tags["runpoint.group"] = run.group
                if run.notes:
                    tags["mlflow.note.content"] = run.notes
                created = client.create_run(experiment_id, run_name=run.name, tags=_clean_tags(tags))
                self._run_id = created.info.run_id
                self._created = True
        if not self._started:
            # a new MLflow run gets the config even when the runpoint run is resumed: its first
            # attempt may have had no MLflow sink, or sent to another tracking URI
            if self._created:
                self._log_params(flatten(dict(run.config)))
                if self.log_config_artifact and run.config:
                    client.log_dict(self._run_id, dict(run.config), "runpoint/config.yaml")
            self._started = True
        record = {"run_id": self._run_id, "experiment_id": experiment_id, "tracking_uri": uri}
        if uri.startswith(("http://", "https://")):
            record["url"] = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{self._run_id}"
        return record

    def write(self, batch: SinkBatch) -> None:
        from mlflow.entities import Metric

        metrics = []
        for key, series in batch.metrics.items():
            name = mlflow_key(key)
            for step, value, wall in zip(series.steps, series.values, series.times):
                metrics.append(Metric(name, value, int(wall * 1000), step))
                self._last_step = max(self._last_step, step)
        for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
            self._client.log_batch(self._run_id, metrics=metrics[start:start + MAX_METRICS_PER_CALL])
        for record in batch.media:
            self._log_media(record)
        if batch.params:
            self._log_params(batch.params)
        for tag in batch.tags:
            self._client.set_tag(self._run_id, mlflow_key(tag), "")
        self._log_summary(batch.summary)

    def finish(self, status: str) -> None:
        self._client.set_terminated(self._run_id, status=_STATUS.get(status, "FAILED"))

    # -- helpers -----------------------------------------------------------------------

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        client = self._client
        found = client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                client.restore_experiment(found.experiment_id)
            return str(found.experiment_id)
        try:
            return str(client.create_experiment(name))
        except MlflowException:  # created meanwhile by another process
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return str(found.experiment_id)

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        # MLflow params cannot change once logged: a key sent before is not sent again
        entries = []
        for key, value in params.items():
            name = mlflow_key(key)
            if name not in self._sent_params:
                entries.append(Param(name, _param_text(value)))
        for start in range(0, len(entries), MAX_PARAMS_PER_CALL):
            self._client.log_batch(self._run_id, params=entries[start:start + MAX_PARAMS_PER_CALL])
            self._sent_params.update(entry.key for entry in entries[start:start + MAX_PARAMS_PER_CALL])

    def _log_media(self, record: Any) -> None:
        name = mlflow_key(record.key)
        artifact = f"runpoint/media/{name}/step-{record.step:09d}"
        if record.kind == "image":
            png = media_file(record, self._run_dir)
            if png is not None:
                from PIL import Image  # the media extra installed pillow to make the PNG

                with Image.open(io.BytesIO(png)) as image:
                    self._client.log_image(self._run_id, image.copy(), key=name, step=record.step,
                                           timestamp=int(record.time * 1000))
        elif record.kind == "text":
            self._client.log_text(self._run_id, record.data["text"], artifact + ".txt")
        else:
            self._client.log_dict(self._run_id, record.data, artifact + ".json")

    def _log_summary(self, summary: Mapping[str, Any]) -> None:
        from mlflow.entities import Metric, RunTag

        metrics, tags = [], []
        for key, value in summary.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(mlflow_key(key), float(value), _now_ms(), self._last_step))
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                tags.append(RunTag(mlflow_key(f"runpoint.summary.{key}"), text[:MAX_TAG_LENGTH]))
        if metrics or tags:
            self._client.log_batch(self._run_id, metrics=metrics, tags=tags)


def _param_text(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, float) and not math.isfinite(value):
        text = str(value)
    else:
        text = json.dumps(value, default=str)
    return text[:MAX_PARAM_LENGTH]


def _clean_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {mlflow_key(key) if not key.startswith("mlflow.") else key: value[:MAX_TAG_LENGTH] for key, value in tags.items()}


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)
