"""The store API's alerts: the :class:`~runpoint.store.base.AlertStore` over HTTP.

Alerts are written with a run's batches (``POST /api/store/runs/{id}/batches``, field
``alerts``); these routes read them. Each authorizes ``read`` on the run's project; counts
cover only the runs the token may see.

    GET  /api/store/runs/{id}/alerts?after_id=&limit=   read_alerts (oldest first)
    POST /api/store/alerts/counts   {"run_ids": [...]}  alert_counts -> {run id: {level: n}}

Example::

    add_store_api(app, store)   # mounts these with the other store routes
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from ..store.base import AlertStore
from ..store.registry import alert_store
from ..store.wire import alert_to_wire
from .auth import principal
from .store_api import PREFIX
from .store_api_service import reply, run_project, service, store_errors

router = APIRouter(prefix=PREFIX, tags=["store"])
MAX_COUNT_RUNS = 10_000


class CountsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_ids: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(max_length=MAX_COUNT_RUNS)


def _alerts(request: Request) -> AlertStore:
    alerts = alert_store(service(request).store)
    if alerts is None:
        raise HTTPException(501, "this server's store keeps no alerts")
    return alerts


@router.get("/runs/{run_id}/alerts")
def read_alerts(
    request: Request, run_id: str, after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int | None, Query(ge=0, le=1_000_000)] = None,
) -> Response:
    """The run's alerts with ``id > after_id``, oldest first (at most ``limit``)."""
    run_project(request, run_id, "read")
    with store_errors():
        records = _alerts(request).read_alerts(run_id, after_id=after_id, limit=limit)
    return reply(request, [alert_to_wire(record) for record in records])


@router.post("/alerts/counts")
def alert_counts(request: Request, body: CountsIn) -> Response:
    """For each of ``run_ids`` that has alerts and that the token may see: level -> how many."""
    limited = principal(request).project
    ids = body.run_ids
    if limited is not None:
        projects = service(request)
        ids = [run_id for run_id in ids if projects.project_of(run_id) == limited]
    with store_errors():
        return reply(request, _alerts(request).alert_counts(ids))
