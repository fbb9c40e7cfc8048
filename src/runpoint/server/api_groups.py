"""The dashboard's API for seeds grouped by config: per group n, mean ± std and CI, and mean curves with a band.

``GET /api/groups?runs=a,b,c,d&metric=val/acc&curve=val/acc`` groups the runs by config with
the seed ignored (``ignore`` to choose other keys) and summarizes each metric per group;
``curve`` metrics also get each group's mean curve across its runs, aligned by step.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ..errors import InvalidArgumentError
from ..query.curves import mean_curve
from ..query.groups import DEFAULT_IGNORE, group_runs
from ..query.selectors import is_selector, select_runs
from ..store import RunRecord
from .access import RUN_ACCESS, visible_run
from .auth import principal
from .context import Dashboard, StrictJSONResponse, dashboard

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[RUN_ACCESS])
Ctx = Annotated[Dashboard, Depends(dashboard)]
MAX_CURVES = 8
MAX_POINTS = 4000


@router.get("/groups", response_model=None, summary="Runs grouped by config (seed ignored), with statistics")
def groups(
    ctx: Ctx,
    request: Request,
    runs: Annotated[list[str], Query(description="Run ids, names or selectors (tag:NAME, cfg:HASH...), comma separated or repeated.")],
    ignore: Annotated[list[str], Query(description="Config keys (or patterns) the grouping ignores; default: the seed.")] = [],  # noqa: B006
    metric: Annotated[list[str], Query(description="Metrics to summarize; default: every metric with a direction.")] = [],  # noqa: B006
    curve: Annotated[list[str], Query(description="Metrics to return mean curves of (at most 8).")] = [],  # noqa: B006
    points: Annotated[int, Query(ge=2, le=MAX_POINTS, description="At most this many steps per curve.")] = 500,
) -> StrictJSONResponse:
    """Groups with n, runs, shared config, ignored values; per metric final/best mean ± std and 95% CI.

    ``differing`` names the config keys whose values tell the groups apart.
    """
    records = _runs(ctx, request, [ref.strip() for ref in runs if ref.strip()])
    if not records:
        raise InvalidArgumentError("runs", "give the runs to group")
    if len(curve) > MAX_CURVES:
        raise InvalidArgumentError("curve", f"at most {MAX_CURVES} curves at once")
    grouped = group_runs(ctx.store, records, ignore=ignore or DEFAULT_IGNORE, metrics=metric or None)
    data = grouped.to_dict()
    for group, out in zip(grouped.groups, data["groups"]):
        out["curves"] = {key: mean_curve(ctx.store, group.runs, key, points=points).to_dict() for key in curve}
    return StrictJSONResponse(data)


def _runs(ctx: Dashboard, request: Request, refs: list[str]) -> list[RunRecord]:
    """The runs ``refs`` name; a selector picks only among the runs the request's token reaches."""
    limited = principal(request).project
    found: dict[str, RunRecord] = {}
    for ref in refs:
        picked = select_runs(ctx.store, ref) if is_selector(ref) else [visible_run(request, ctx.store, ref)]
        for run in picked:
            if limited is None or run.project == limited:
                found.setdefault(run.id, run)
    return list(found.values())
