"""The store API's reads: the read side of Store, MediaStore and CheckpointRegistry over HTTP.

Every route authorizes ``read`` on the run's project; listings cover only what the token
may see (:func:`~runpoint.server.auth.visible_project`). Replies are msgpack when the client
accepts it (``runpoint.remote.HttpStore`` always does), JSON otherwise; a metric series is
``[steps, values, times]`` little-endian byte strings in msgpack and
``{"steps": [...], "values": [...], "times": [...]}`` in JSON.

    GET  /api/store/runs/{id}                      get_run (audited)
    GET  /api/store/runs?text=...                  find_runs
    POST /api/store/runs/search                    list_runs (a RunQuery as JSON)
    GET  /api/store/count?project=...              count_runs
    GET  /api/store/runs/{id}/params | meta | summary | ranks
    GET  /api/store/runs/{id}/metrics              metric_keys
    GET  /api/store/runs/{id}/metrics/stats?key=a&key=b    metric_stats (no key: all)
    GET  /api/store/runs/{id}/metrics/series?key=...&min_step=&max_step=   read_metric
    GET  /api/store/runs/{id}/media                media_keys
    GET  /api/store/runs/{id}/media/records?key=...&step=&min_step=&max_step=   read_media
    GET  /api/store/runs/{id}/media/file?key=...&step=...  a media record's file (an image's PNG)
    GET  /api/store/runs/{id}/checkpoints?include_deleted=true   list_checkpoints
    GET  /api/store/runs/{id}/batches/{sequence}   batch_applied -> {"applied": bool}
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response

from ..artifacts.paths import resolve_inside, run_directory
from ..errors import InvalidArgumentError
from ..query.runs import media_store
from ..store.base import Store
from ..store.registry import checkpoint_registry
from ..store.wire import (
    MSGPACK,
    checkpoint_to_wire,
    encode_series,
    media_to_wire,
    rank_to_wire,
    run_to_wire,
    stats_to_wire,
)
from .auth import audit, principal, visible_project
from .store_api import PREFIX
from .store_api_models import Int64, QueryIn
from .store_api_service import (
    existing_run_project,
    reply,
    run_project,
    service,
    store_errors,
    wants_msgpack,
)

router = APIRouter(prefix=PREFIX, tags=["store"])
Key = Annotated[str, Query(min_length=1, max_length=512)]
Step = Annotated[Int64 | None, Query()]


def _store(request: Request) -> Store:
    return service(request).store


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str) -> Response:
    """The run with exactly this id; 404 if none."""
    project = existing_run_project(request, run_id, "read")
    with store_errors():
        run = _store(request).get_run(run_id)
    audit(request, "run.get", project=project, run_id=run_id)
    return reply(request, run_to_wire(run))


@router.get("/runs")
def find_runs(request: Request, text: Annotated[str, Query(max_length=512)]) -> Response:
    """Runs whose id starts with ``text`` or whose name is ``text`` (in the token's project)."""
    limited = principal(request).project
    with store_errors():
        runs = _store(request).find_runs(text)
    return reply(request, [run_to_wire(run) for run in runs if limited is None or run.project == limited])


@router.post("/runs/search")
def list_runs(request: Request, body: QueryIn) -> Response:
    """Runs matching the query, newest first unless it says otherwise."""
    query = body.query(visible_project(request, body.project))
    try:
        with store_errors():
            runs = _store(request).list_runs(query)
    except ValueError as exc:  # a condition the backend cannot evaluate (metrics compare numbers)
        raise HTTPException(400, f"conditions: {exc}") from None
    return reply(request, [run_to_wire(run) for run in runs])


@router.get("/count")
def count_runs(request: Request, project: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """How many runs the store holds (in ``project``, or in the token's project)."""
    with store_errors():
        return reply(request, {"count": _store(request).count_runs(visible_project(request, project))})


@router.get("/runs/{run_id}/params")
def get_params(request: Request, run_id: str) -> Response:
    """The run's flattened config, secrets masked."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, _store(request).get_params(run_id))


@router.get("/runs/{run_id}/meta")
def get_meta(request: Request, run_id: str) -> Response:
    """The metadata captured when the run started; 404 for an unknown run."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, _store(request).get_meta(run_id))


@router.get("/runs/{run_id}/summary")
def get_summary(request: Request, run_id: str) -> Response:
    """The values set on ``run.summary``."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, _store(request).get_summary(run_id))


@router.get("/runs/{run_id}/ranks")
def list_ranks(request: Request, run_id: str) -> Response:
    """The run's rank rows, by rank."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, [rank_to_wire(rank) for rank in _store(request).list_ranks(run_id)])


@router.get("/runs/{run_id}/metrics")
def metric_keys(request: Request, run_id: str) -> Response:
    """Every metric key the run has logged, sorted."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, _store(request).metric_keys(run_id))


@router.get("/runs/{run_id}/metrics/stats")
def metric_stats(request: Request, run_id: str, key: Annotated[list[str] | None, Query()] = None) -> Response:
    """Count, last, min and max of the metrics named by ``key`` (repeatable; none: every metric)."""
    run_project(request, run_id, "read")
    with store_errors():
        stats = _store(request).metric_stats(run_id, key or None)
    return reply(request, {name: stats_to_wire(value) for name, value in stats.items()})


@router.get("/runs/{run_id}/metrics/series")
def read_metric(request: Request, run_id: str, key: Key, min_step: Step = None, max_step: Step = None) -> Response:
    """Every point of one metric in logged order, optionally within steps."""
    run_project(request, run_id, "read")
    with store_errors():
        series = _store(request).read_metric(run_id, key, min_step=min_step, max_step=max_step)
    if wants_msgpack(request):
        return Response(encode_series(series), media_type=MSGPACK)
    return reply(request, {"steps": series.steps.tolist(), "values": series.values.tolist(),
                           "times": series.times.tolist()})


@router.get("/runs/{run_id}/media")
def media_keys(request: Request, run_id: str) -> Response:
    """Every media key of the run with its kind and steps."""
    run_project(request, run_id, "read")
    with store_errors():
        return reply(request, [asdict(key) for key in media_store(_store(request)).media_keys(run_id)])


@router.get("/runs/{run_id}/media/records")
def read_media(request: Request, run_id: str, key: Key, step: Step = None, min_step: Step = None,
               max_step: Step = None) -> Response:
    """The records of one media key in step order: one ``step``, or those within the bounds."""
    run_project(request, run_id, "read")
    with store_errors():
        records = media_store(_store(request)).read_media(run_id, key, step=step, min_step=min_step, max_step=max_step)
    return reply(request, [media_to_wire(record) for record in records])


@router.get("/runs/{run_id}/media/file")
def read_media_file(request: Request, run_id: str, key: Key, step: Annotated[Int64, Query()]) -> Response:
    """The file of one media record (an image's PNG); 404 when it has none."""
    existing_run_project(request, run_id, "read")
    with store_errors():
        data = _media_file(_store(request), run_id, key, step)
    if data is None:
        raise HTTPException(404, f"media {key!r:.80} of run {run_id} has no file at step {step}")
    return Response(data, media_type="application/octet-stream")


def _media_file(store: Store, run_id: str, key: str, step: int) -> bytes | None:
    reader = getattr(store, "read_media_file", None)
    if reader is not None:
        return reader(run_id, key, step)
    records = media_store(store).read_media(run_id, key, step=step)
    if not records or not records[0].path:
        return None
    run = store.get_run(run_id)  # the SQLite store keeps files under the root, beside its database
    run_dir = run_directory(Path(store.location).parent, run.dir, run_id)
    try:
        return resolve_inside(run_dir, records[0].path).read_bytes()
    except InvalidArgumentError:
        return None


@router.get("/runs/{run_id}/checkpoints")
def list_checkpoints(request: Request, run_id: str, include_deleted: bool = False) -> Response:
    """The run's checkpoints by step; those removed by retention only with ``include_deleted``."""
    run_project(request, run_id, "read")
    registry = checkpoint_registry(_store(request))
    if registry is None:
        raise HTTPException(501, "this server's store keeps no checkpoint registry")
    with store_errors():
        records = registry.list_checkpoints(run_id, include_deleted=include_deleted)
    return reply(request, [checkpoint_to_wire(record) for record in records])


@router.get("/runs/{run_id}/batches/{sequence}")
def batch_applied(request: Request, run_id: str, sequence: Int64) -> Response:
    """Whether a batch of the run with this sequence has been applied."""
    run_project(request, run_id, "read")
    applied: Any = getattr(_store(request), "batch_applied", None)
    if applied is None:
        raise HTTPException(501, "this server's store does not answer which batches it applied")
    with store_errors():
        return reply(request, {"applied": bool(applied(run_id, sequence))})
