"""Import MLflow runs: every run of every active experiment of a tracking URI.

Each MLflow run becomes a runpoint run in the project named after its experiment (or
the ``project`` given), with its params as the config (``model.lr`` becomes ``model:
{lr: ...}``; values that read as JSON numbers, booleans or lists become those), the full
history of every metric with steps and wall times (MLflow keeps milliseconds), its
name, notes, start and end times and status. MLflow tags go to ``meta.json``; tags
without a value become runpoint tags. Artifacts stay in MLflow; their location is kept.

Runs that runpoint itself mirrored to MLflow (tag ``runpoint.run_id``) are skipped when
that run is already in the root.

Example::

    from runpoint.importers import mlflow

    new_ids = mlflow.import_runs("http://127.0.0.1:5000", root="runpoint")

or ``runpoint import mlflow sqlite:///mlflow.db``.
"""

from __future__ import annotations

import json
import os
from array import array
from pathlib import Path
from typing import Any, Iterator

from .._util.optional import require
from .._util.uri import without_credentials
from ..artifacts.paths import resolve_root
from ..errors import InvalidArgumentError, RunNotFoundError, StoreError
from ..store import MetricSeries, RunStatus, Store, open_store
from ._common import ImportedRun, as_project, check_project, unflatten, write_run

__all__ = ["import_runs"]

_STATUS = {
    "FINISHED": RunStatus.COMPLETED, "FAILED": RunStatus.FAILED, "KILLED": RunStatus.KILLED,
    # still running (or never ended) in MLflow: nothing tells how it ended
    "RUNNING": RunStatus.CRASHED, "SCHEDULED": RunStatus.CRASHED,
}
_PAGE = 1000


def tracking_uri(location: str) -> str:
    """A tracking URI for ``location``: URIs as they are, a ``.db`` file as sqlite, a directory as a file store."""
    if "://" in location or location.startswith("databricks"):
        return location
    path = Path(location).expanduser().absolute()
    if path.is_file() and path.suffix in {".db", ".sqlite", ".sqlite3"}:
        return f"sqlite:///{path}"
    if path.is_dir():
        return path.as_uri()
    raise InvalidArgumentError(
        "location", f"{location!r} is neither a tracking URI (http://..., sqlite:///...) nor an MLflow directory or .db file"
    )


def import_runs(
    location: str, *, root: Path | str | None = None, project: str | None = None
) -> list[str]:
    """Import every run of the MLflow tracking URI ``location``; returns the ids of runs newly created.

    Runs imported before are skipped. ``project`` puts every run in that project instead
    of one per experiment.

    Example::

        ids = import_runs("sqlite:///mlflow.db", root="runpoint", project="legacy")
    """
    mlflow = require("mlflow", "mlflow", "importing from MLflow")
    check_project(project)
    uri = tracking_uri(os.fspath(location))
    shown = without_credentials(uri)  # the URI as stored and printed: no password
    _check_reachable(uri)
    client = mlflow.MlflowClient(tracking_uri=uri)
    try:
        experiments = client.search_experiments()
    except Exception as exc:  # connection refused, not a tracking store...
        reason = str(exc).replace(uri, shown)
        raise InvalidArgumentError("location", f"cannot read MLflow runs from {shown}: {reason}") from exc
    root_path = resolve_root(root)
    store = open_store(root_path)
    created = []
    try:
        for experiment in experiments:
            target = project or as_project(experiment.name, f"mlflow-{experiment.experiment_id}")
            for source in _runs(client, experiment.experiment_id):
                if _mirrored_from(store, source):
                    continue
                run_id = write_run(store, root_path, _convert(client, shown, experiment, source, target))
                if run_id is not None:
                    created.append(run_id)
    finally:
        store.close()
    return created


def _check_reachable(uri: str) -> None:
    """Fail fast on a server that is not there (MLflow's client would retry for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error
    import urllib.request

    uri = without_credentials(uri)  # /health needs no login, and urllib would take "user:pw@host" for a host
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=10):
            pass
    except urllib.error.HTTPError:
        pass  # it answers: a server without /health, or behind authentication
    except OSError as exc:
        raise InvalidArgumentError("location", f"cannot reach the MLflow server at {uri}: {exc}") from None


def _runs(client: Any, experiment_id: str) -> Iterator[Any]:
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=_PAGE, page_token=token, order_by=["attributes.start_time ASC"])
        yield from page
        token = page.token
        if not token:
            return


def _mirrored_from(store: Store, source: Any) -> bool:
    origin = source.data.tags.get("runpoint.run_id")
    if not origin:
        return False
    try:
        store.get_run(origin)
    except (RunNotFoundError, StoreError):
        return False
    return True


def _convert(client: Any, uri: str, experiment: Any, source: Any, project: str) -> ImportedRun:
    info, data = source.info, source.data
    metrics = {key: _history(client, info.run_id, key) for key in sorted(data.metrics)}
    tags = dict(data.tags)
    user_tags = {key: value for key, value in tags.items() if not key.startswith(("mlflow.", "runpoint."))}
    created = info.start_time / 1000 if info.start_time else min(
        (series.times[0] for series in metrics.values() if len(series)), default=0.0
    )
    return ImportedRun(
        source="mlflow", source_id=info.run_id, project=project,
        name=info.run_name or tags.get("mlflow.runName") or info.run_id[:12],
        created_at=created, ended_at=info.end_time / 1000 if info.end_time else None,
        status=_STATUS.get(info.status, RunStatus.COMPLETED),
        config=unflatten({key: _param_value(value) for key, value in data.params.items()}),
        metrics=metrics, tags=tuple(key for key, value in user_tags.items() if value in ("", "true", "True")),
        notes=tags.get("mlflow.note.content", ""),
        origin={
            "tracking_uri": uri, "experiment": experiment.name, "experiment_id": experiment.experiment_id,
            "run_id": info.run_id, "artifact_uri": without_credentials(info.artifact_uri or ""), "status": info.status,
            "user": info.user_id, "tags": tags,
        },
    )


def _history(client: Any, run_id: str, key: str) -> MetricSeries:
    points = client.get_metric_history(run_id, key)
    points = sorted(points, key=lambda m: (m.timestamp, m.step))  # the order they were logged in
    return MetricSeries(
        array("q", (int(m.step) for m in points)), array("d", (float(m.value) for m in points)),
        array("d", (m.timestamp / 1000 for m in points)),
    )


def _param_value(text: str) -> Any:
    """MLflow keeps params as text: give back numbers, booleans and lists written as JSON, strings as strings.

    A text is read as a value only when writing that value back gives the same text
    (``0.001``, ``[1, 2]``), so ``"1e3"`` or ``"007"`` stay strings.
    """
    if text in {"True", "False"}:
        return text == "True"
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not (isinstance(value, (int, float, bool, list)) or value is None):
        return text
    canonical = {json.dumps(value), json.dumps(value, separators=(",", ":")), str(value)}
    return value if text in canonical else text
