"""The store API's changes: the write side of the Store and CheckpointRegistry protocols over HTTP.

Every route authorizes the caller on the run's project (``write`` scope; deleting a run
too: a token may delete the runs of its own project, and the audit log records it) and
audits what it changed. Write batches are not audited one by one: they are a run's own data
stream (one a second per run), and the run's creation and status changes are.

    POST   /api/store/runs                              create_run  {run, params, meta}   -> 201
    POST   /api/store/runs/{id}/batches                 write (msgpack, or JSON)          -> 204
    POST   /api/store/runs/{id}/status                  set_status (compare-and-set)      -> {"changed": bool}
    POST   /api/store/runs/{id}/reopen                  reopen_run                        -> the run; 409 if running
    PUT    /api/store/runs/{id}/ranks/{rank}            register_rank
    POST   /api/store/runs/{id}/ranks/{rank}/status     set_rank_status
    POST   /api/store/runs/{id}/metrics/truncate        truncate_metrics                  -> {"dropped": n}
    DELETE /api/store/runs/{id}                         delete_run
    POST   /api/store/runs/{id}/checkpoints             add_checkpoint
    POST   /api/store/runs/{id}/checkpoints/{step}/deleted   mark_checkpoint_deleted
    PUT    /api/store/runs/{id}/checkpoints/best        set_best_checkpoint {step | null}

The reads are in :mod:`runpoint.server.store_api_reads`, the model registry in
:mod:`runpoint.server.store_api_registry`, alerts in :mod:`runpoint.server.store_api_alerts`;
:func:`add_store_api` mounts them all.

Example::

    app = FastAPI()
    add_store_api(app, open_store("postgresql://runpoint@db/runpoint"))
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from .._util.ids import is_valid_identifier
from ..errors import InvalidArgumentError, RunNotFoundError, RunpointError
from ..store.base import Store, WriteBatch
from ..store.registry import checkpoint_registry
from ..store.wire import (
    MSGPACK,
    batch_from_wire,
    decode_batch,
    media_path_leaves,
    run_to_wire,
)
from .auth import audit, authorize
from .store_api_models import (
    BestIn,
    CheckpointIn,
    CreateRunIn,
    DeletedIn,
    Int64,
    RankIn,
    RankStatusIn,
    ReopenIn,
    StatusIn,
    TruncateIn,
)
from .store_api_service import (
    StoreService,
    existing_run_project,
    reply,
    run_project,
    service,
    store_errors,
)

MAX_BODY_BYTES = 64 * 1024 * 1024
PREFIX = "/api/store"
router = APIRouter(prefix=PREFIX, tags=["store"])
RankNumber = Annotated[int, Path(ge=0, le=65535)]

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            MSGPACK: {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/WriteBatchJSON"}},
        },
    }
}
_SERIES_JSON = {"type": "array", "minItems": 3, "maxItems": 3, "items": {"type": "array", "items": {"type": "number"}}}
WRITE_BATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "description": "A WriteBatch: metric series as [steps, values, times] lists (msgpack: little-endian bytes).",
    "properties": {
        "sequence": {"type": ["integer", "null"]}, "rank": {"type": ["integer", "null"]},
        "heartbeat_at": {"type": ["number", "null"]}, "tags": {"type": "array", "items": {"type": "string"}},
        "params": {"type": "object"}, "summary": {"type": "object"},
        "summary_deleted": {"type": "array", "items": {"type": "string"}},
        "metrics": {"type": "object", "additionalProperties": _SERIES_JSON},
        "media": {"type": "array", "items": {"type": "object"}},
        "alerts": {"type": "array", "items": {"type": "object"}},
    },
}


def _check_names(run_id: str, project: str) -> None:
    for what, value in (("run.id", run_id), ("run.project", project)):
        if not is_valid_identifier(value):
            raise HTTPException(400, f"{what}: {value!r:.80} must be letters, digits, '.', '_' or '-' (at most 128)")


@router.post("/runs", status_code=201)
def create_run(request: Request, body: CreateRunIn) -> Response:
    """Create a run in its project (``dir`` is always ``<project>/<id>``); 409 if the id exists."""
    record = body.run.record()
    _check_names(record.id, record.project)
    authorize(request, "write", record.project)
    with store_errors():
        service(request).store.create_run(record, body.params, body.meta)
    service(request).remember(record.id, record.project)
    audit(request, "run.create", project=record.project, run_id=record.id)
    return reply(request, run_to_wire(record), 201)


async def _read_body(request: Request) -> bytes:
    """The request body, 413 past :data:`MAX_BODY_BYTES` (checked before and while reading)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPException(413, f"the body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB: split the batch")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise HTTPException(413, f"the body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB: split the batch")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(content_type: str, body: bytes) -> WriteBatch:
    kind = content_type.split(";")[0].strip().lower()
    if kind == MSGPACK:
        batch = decode_batch(body)
    elif kind == "application/json":
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            raise InvalidArgumentError("body", "is not valid JSON") from None
        batch = batch_from_wire(value)
    else:
        raise HTTPException(415, f"a batch is {MSGPACK} or application/json, not {kind or 'untyped'}")
    for record in batch.media:
        if media_path_leaves(record.path):
            raise InvalidArgumentError("media.path", f"{record.path!r:.80} of key {record.key!r:.80} leaves the run's media/")
    return batch


def _write(request: Request, run_id: str, body: bytes) -> None:
    existing_run_project(request, run_id, "write")
    with store_errors():
        batch = _decode(request.headers.get("content-type", ""), body)
        service(request).store.write(run_id, batch)


@router.post("/runs/{run_id}/batches", status_code=204, openapi_extra={**_BATCH_BODY})
async def write(request: Request, run_id: str) -> Response:
    """Apply one WriteBatch atomically (once per ``sequence``); 404 for an unknown run, 413 over 64 MiB."""
    body = await _read_body(request)  # (an unauthenticated caller never gets here: the accounts' middleware)
    await run_in_threadpool(_write, request, run_id, body)  # one trip to a worker thread: check, decode, write
    return Response(status_code=204)


@router.post("/runs/{run_id}/status")
def set_status(request: Request, run_id: str, body: StatusIn) -> Response:
    """Move the run to ``status``; with ``expect``/``heartbeat_before`` only if those hold. False for unknown runs."""
    project = run_project(request, run_id, "write")
    with store_errors():
        changed = service(request).store.set_status(
            run_id, body.status, error=body.error, ended_at=body.ended_at, expect=body.expect,
            heartbeat_before=body.heartbeat_before)
    if changed:
        audit(request, "run.status", project=project, run_id=run_id, detail={"status": body.status.value})
    return reply(request, {"changed": changed})


@router.post("/runs/{run_id}/reopen")
def reopen_run(request: Request, run_id: str, body: ReopenIn) -> Response:
    """Mark a finished run running again (resume_count + 1); 409 when another process resumed it."""
    project = existing_run_project(request, run_id, "write")
    store = service(request).store
    try:
        with store_errors():
            run = store.reopen_run(run_id, host=body.host, pid=body.pid, now=body.now)
    except RunNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except RunpointError as exc:
        raise HTTPException(409, str(exc)) from None
    audit(request, "run.reopen", project=project, run_id=run_id)
    return reply(request, run_to_wire(run))


@router.put("/runs/{run_id}/ranks/{rank}", status_code=204)
def register_rank(request: Request, run_id: str, rank: RankNumber, body: RankIn) -> Response:
    """Insert or replace one rank's row; ``reset`` drops the other ranks' rows first."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        service(request).store.register_rank(body.record(run_id, rank), reset=body.reset)
    audit(request, "run.rank", project=project, run_id=run_id, detail={"rank": rank, "reset": body.reset})
    return Response(status_code=204)


@router.post("/runs/{run_id}/ranks/{rank}/status", status_code=204)
def set_rank_status(request: Request, run_id: str, rank: RankNumber, body: RankStatusIn) -> Response:
    """Record how one rank ended."""
    project = run_project(request, run_id, "write")
    with store_errors():
        service(request).store.set_rank_status(run_id, rank, body.status, error=body.error, ended_at=body.ended_at)
    audit(request, "run.rank_status", project=project, run_id=run_id,
          detail={"rank": rank, "status": body.status.value})
    return Response(status_code=204)


@router.post("/runs/{run_id}/metrics/truncate")
def truncate_metrics(request: Request, run_id: str, body: TruncateIn) -> Response:
    """Drop the run's metric points past ``after_step``; how many went."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        dropped = service(request).store.truncate_metrics(run_id, body.after_step)
    audit(request, "run.truncate", project=project, run_id=run_id, detail={"after_step": body.after_step})
    return reply(request, {"dropped": dropped})


@router.delete("/runs/{run_id}", status_code=204)
def delete_run(request: Request, run_id: str) -> Response:
    """Remove the run and everything the store holds about it (audited)."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        service(request).store.delete_run(run_id)
    service(request).forget(run_id)
    files = getattr(request.app.state, "object_store", None)
    if files is not None:  # the run's files on the object store go with it
        files.delete_run(project, run_id)
    audit(request, "run.delete", project=project, run_id=run_id)
    return Response(status_code=204)


def _registry(request: Request) -> Any:
    registry = checkpoint_registry(service(request).store)
    if registry is None:
        raise HTTPException(501, "this server's store keeps no checkpoint registry")
    return registry


@router.post("/runs/{run_id}/checkpoints", status_code=204)
def add_checkpoint(request: Request, run_id: str, body: CheckpointIn) -> Response:
    """Insert a checkpoint of the run, replacing one of the same step."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        _registry(request).add_checkpoint(body.record(run_id))
    audit(request, "checkpoint.add", project=project, run_id=run_id, target=str(body.step))
    return Response(status_code=204)


@router.post("/runs/{run_id}/checkpoints/{step}/deleted", status_code=204)
def mark_checkpoint_deleted(request: Request, run_id: str, step: Int64, body: DeletedIn) -> Response:
    """Record that retention removed the checkpoint's files."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        _registry(request).mark_checkpoint_deleted(run_id, step, body.deleted_at)
    audit(request, "checkpoint.deleted", project=project, run_id=run_id, target=str(step))
    return Response(status_code=204)


@router.put("/runs/{run_id}/checkpoints/best", status_code=204)
def set_best_checkpoint(request: Request, run_id: str, body: BestIn) -> Response:
    """Flag ``step`` as the run's best checkpoint (null: none)."""
    project = existing_run_project(request, run_id, "write")
    with store_errors():
        _registry(request).set_best_checkpoint(run_id, body.step)
    audit(request, "checkpoint.best", project=project, run_id=run_id, target=str(body.step))
    return Response(status_code=204)


def add_store_api(app: FastAPI, store: Store) -> StoreService:
    """Serve ``store`` under ``/api/store`` from ``app``: the routes of this module and of the reads."""
    from . import store_api_alerts, store_api_reads, store_api_registry

    store_service = StoreService(store)
    app.state.store_service = store_service
    app.include_router(router)
    app.include_router(store_api_reads.router)
    app.include_router(store_api_registry.router)
    app.include_router(store_api_alerts.router)
    _document_batch_schema(app)
    return store_service


def _document_batch_schema(app: FastAPI) -> None:
    """Put the JSON form of a batch into the OpenAPI components (the batch route reads its body itself)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {}).setdefault("schemas", {})["WriteBatchJSON"] = WRITE_BATCH_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
