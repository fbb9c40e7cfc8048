"""The dashboard's JSON API over alerts: counts for the runs table's badges, and one run's list.

    GET /api/alerts/counts?project=...     {run id: {level: n}} for the runs that have alerts
    GET /api/runs/{ref}/alerts?after_id=   {"alerts": [...]} oldest first
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from .. import query
from ..query.alerts import alert_counts, list_alerts
from ..store.base import RunQuery
from ..store.wire import alert_to_wire
from .access import RUN_ACCESS
from .auth import visible_project
from .context import Dashboard, StrictJSONResponse, dashboard

router = APIRouter(prefix="/api", tags=["alerts"], dependencies=[RUN_ACCESS])

Ctx = Annotated[Dashboard, Depends(dashboard)]


@router.get("/alerts/counts", response_model=None, summary="How many alerts each run has, by level")
def counts(ctx: Ctx, request: Request, project: str | None = None) -> StrictJSONResponse:
    """For each run (of ``project``) with alerts: level -> how many."""
    ids = [run.id for run in ctx.store.list_runs(RunQuery(project=visible_project(request, project or None)))]
    return StrictJSONResponse(alert_counts(ctx.store, ids))


@router.get("/runs/{ref}/alerts", response_model=None, summary="A run's alerts")
def run_alerts(
    ctx: Ctx, ref: str, after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> StrictJSONResponse:
    """The run's alerts (detector findings and ``run.alert`` calls) with ``id > after_id``, oldest first."""
    run = query.resolve_run(ctx.store, ref)
    found = [a for a in list_alerts(ctx.store, run.id) if a.id > after_id][:limit]
    return StrictJSONResponse({"alerts": [alert_to_wire(a) for a in found]})
