"""Mirror a run to MLflow: a tracking server (``http://...``) or a local store (``sqlite:///...``).

The run becomes an MLflow run in the experiment named after the project, with the
flattened config as params, the full config as the artifact ``runpoint/config.yaml``,
runpoint's tags and ids as MLflow tags, every scalar with its step and wall time, and
the final status. Resuming the runpoint run continues the same MLflow run. Uses
``MlflowClient`` only, so MLflow's global "active run" is left alone.

MLflow restricts names: characters other than letters, digits and ``_ - . / : space``
become ``_``, and a name that had to change gets ``_`` and 6 hex digits of a hash of the
original, so that ``acc@1`` and ``acc#1`` stay two metrics (``acc_1_<hash>``); the sink
warns once per run. Numeric summary values are logged as metrics, others as tags
``runpoint.summary.<key>``. ``rp.Image`` values become MLflow's stepped images (the
run's Images tab); histograms and tables become JSON artifacts and texts text artifacts
under ``runpoint/media/<key>/``.

Example::

    from runpoint.sinks import MLflowSink

    rp.init(project="digits", sinks=[MLflowSink(tracking_uri="http://127.0.0.1:5000")])
    # or sinks=["mlflow"] with $MLFLOW_TRACKING_URI set
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .._util.optional import require
from .._util.uri import without_credentials
from ..config import flatten
from . import _mlflow_http
from .base import SinkBatch, SinkOptions, SinkRun, media_file

logger = logging.getLogger("runpoint")

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "killed": "KILLED", "crashed": "FAILED"}
_BAD_CHARS = re.compile(r"[^/\w.\- :]")
MAX_METRICS_PER_CALL = 1000
MAX_PARAMS_PER_CALL = 100
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_TAGS_PER_CALL = 100
MAX_NAME_LENGTH = 250


def mlflow_key(key: str) -> str:
    """``key`` made acceptable to MLflow as a metric or param name, distinct for distinct keys.

    A key MLflow accepts is kept; one that had to change ends in ``_`` and 6 hex digits
    of a hash of ``key``, so two keys never become one name.
    """
    cleaned = _BAD_CHARS.sub("_", key)
    parts = ["__" if part == ".." else part for part in cleaned.split("/") if part not in {"", "."}]
    name = "/".join(parts)
    if name == key and 0 < len(name) <= MAX_NAME_LENGTH:
        return name
    digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:6]
    return f"{name[:MAX_NAME_LENGTH - 7]}_{digest}"


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
        self._names: dict[str, str] = {}
        self._warned_names = False
        self._aborted = False
        self._bounds = _mlflow_http.limits(self.options.call_timeout)

    def for_run(self) -> "MLflowSink":
        """A fresh sink with these settings: the same object may be given to many runs."""
        return MLflowSink(
            self.tracking_uri, self.experiment, log_config_artifact=self.log_config_artifact, options=self.options
        )

    def start(self, run: SinkRun) -> Mapping[str, Any]:
        require("mlflow", self.extra, "the mlflow sink")
        with _mlflow_http.bounded(self._bounds):
            return self._start(run)

    def _start(self, run: SinkRun) -> Mapping[str, Any]:
        import mlflow

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
                if self._aborted:  # given up on while creating it: abort() found no run to end
                    client.set_terminated(self._run_id, status="KILLED")
        self._tracking_uri, self._experiment = uri, experiment_id
        if not self._started:
            # a new MLflow run gets the config even when the runpoint run is resumed: its first
            # attempt may have had no MLflow sink, or sent to another tracking URI
            if self._created:
                self._log_params(flatten(dict(run.config)))
                if self.log_config_artifact and run.config:
                    client.log_dict(self._run_id, dict(run.config), "runpoint/config.yaml")
            self._started = True
        return self._record()

    def _record(self) -> dict[str, Any]:
        uri, experiment_id = self._tracking_uri, self._experiment
        record = {"run_id": self._run_id, "experiment_id": experiment_id, "tracking_uri": uri}
        if uri.startswith(("http://", "https://")):
            record["url"] = f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{self._run_id}"
        return record

    def write(self, batch: SinkBatch) -> None:
        with _mlflow_http.bounded(self._bounds):
            self._write(batch)

    def _write(self, batch: SinkBatch) -> None:
        from mlflow.entities import Metric, RunTag

        metrics = []
        for key, series in batch.metrics.items():
            name = self._name(key)
            for step, value, wall in zip(series.steps, series.values, series.times):
                metrics.append(Metric(name, value, int(wall * 1000), step))
            if len(series):
                self._last_step = max(self._last_step, max(series.steps))
        self._log_batch(metrics=metrics)
        for record in batch.media:
            if self._aborted:
                return
            self._log_media(record)
        if batch.params:
            self._log_params(batch.params)
        self._log_batch(tags=[RunTag(self._name(tag), "") for tag in batch.tags])
        self._log_summary(batch.summary)

    def finish(self, status: str) -> None:
        with _mlflow_http.bounded(self._bounds):
            self._client.set_terminated(self._run_id, status=_STATUS.get(status, "FAILED"))

    def abort(self, status: str) -> None:
        """runpoint gave up on the sink: send nothing more, and end the MLflow run if there is one."""
        self._aborted = True
        if self._client is not None and self._run_id is not None:
            with _mlflow_http.bounded(self._bounds):
                self._client.set_terminated(self._run_id, status=_STATUS.get(status, "KILLED"))

    def rewind(self, step: int) -> Mapping[str, Any]:
        """Go on in a new MLflow run holding the points up to ``step`` (MLflow cannot delete points)."""
        with _mlflow_http.bounded(self._bounds):
            return self._rewind(step)

    def _rewind(self, step: int) -> Mapping[str, Any]:
        from mlflow.entities import Metric, Param

        client, old = self._client, self._run_id
        run = client.get_run(old)
        tags = {key: value for key, value in run.data.tags.items()
                if not key.startswith("mlflow.") or key == "mlflow.note.content"}
        tags.update({"runpoint.rewound_from": old, "runpoint.rewound_to_step": str(step)})
        tags.pop("runpoint.superseded_by", None)
        created = client.create_run(run.info.experiment_id, run_name=run.info.run_name, tags=tags)
        self._run_id = created.info.run_id
        self._sent_params = set()
        self._log_params_entries([Param(key, value) for key, value in run.data.params.items()])
        for key in run.data.metrics:
            history = sorted(client.get_metric_history(old, key), key=lambda m: (m.timestamp, m.step))
            self._log_batch(metrics=[Metric(key, m.value, m.timestamp, m.step) for m in history if m.step <= step])
        if self.log_config_artifact and any(
            info.path == "runpoint/config.yaml" for info in client.list_artifacts(old, "runpoint")
        ):
            config = Path(client.download_artifacts(old, "runpoint/config.yaml")).read_text(encoding="utf-8")
            client.log_text(self._run_id, config, "runpoint/config.yaml")
        self._last_step = min(self._last_step, step)
        client.set_tag(old, "runpoint.superseded_by", self._run_id)
        client.set_terminated(old, status="KILLED")
        return self._record()

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

    def _name(self, key: str) -> str:
        """The MLflow name of ``key``; warns once per run when a key had to change."""
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = mlflow_key(key)
            if name != key and not self._warned_names:
                self._warned_names = True
                logger.warning(
                    "runpoint: MLflow does not accept the key %r: the mlflow sink logs it as %r (keys with "
                    "characters other than letters, digits and _ - . / : space get a hash suffix, so that "
                    "no two keys become one)", key, name,
                )
        return name

    def _log_batch(self, metrics: Sequence[Any] = (), tags: Sequence[Any] = ()) -> None:
        """Send in as few requests as MLflow's limits allow; stop when the sink was given up on."""
        for start in range(0, len(metrics), MAX_METRICS_PER_CALL):
            if self._aborted:
                return
            self._client.log_batch(self._run_id, metrics=metrics[start:start + MAX_METRICS_PER_CALL])
        for start in range(0, len(tags), MAX_TAGS_PER_CALL):
            if self._aborted:
                return
            self._client.log_batch(self._run_id, tags=tags[start:start + MAX_TAGS_PER_CALL])

    def _log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self._log_params_entries([Param(self._name(key), _param_text(value)) for key, value in params.items()])

    def _log_params_entries(self, params: list[Any]) -> None:
        from mlflow.exceptions import MlflowException

        # MLflow params cannot change once logged: a key sent before is not sent again
        entries = list({entry.key: entry for entry in params if entry.key not in self._sent_params}.values())
        for start in range(0, len(entries), MAX_PARAMS_PER_CALL):
            chunk = entries[start:start + MAX_PARAMS_PER_CALL]
            try:
                self._client.log_batch(self._run_id, params=chunk)
            except MlflowException as exc:
                if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                    raise
                self._log_params_one_by_one(chunk)  # one bad param must not cost the others, nor the sink
            self._sent_params.update(entry.key for entry in chunk)

    def _log_params_one_by_one(self, entries: list[Any]) -> None:
        from mlflow.exceptions import MlflowException

        for entry in entries:
            try:
                self._client.log_batch(self._run_id, params=[entry])
            except MlflowException as exc:
                if getattr(exc, "error_code", "") != "INVALID_PARAMETER_VALUE":
                    raise
                logger.warning("runpoint: the mlflow sink could not log the param %r: %s", entry.key, exc.message)

    def _log_media(self, record: Any) -> None:
        name = self._name(record.key)
        artifact = f"runpoint/media/{name}/step-{record.step:09d}"
        if record.kind == "image":
            png = media_file(record, self._run_dir)
            if png is not None:
                from PIL import (
                    Image,  # the media extra installed pillow to make the PNG
                )

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
                metrics.append(Metric(self._name(key), float(value), _now_ms(), self._last_step))
            else:
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                tags.append(RunTag(self._name(f"runpoint.summary.{key}"), text[:MAX_TAG_LENGTH]))
        self._log_batch(metrics=metrics, tags=tags)


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
