"""The dashboard's JSON API over runs: listing, details, live state, chart series, compare.

Every handler reads through :mod:`runpoint.query` (which detects crashed runs) and the
store's protocols, never SQL. The routes for a run's files (console, checkpoints, media)
are in :mod:`runpoint.server.api_files`, launching in :mod:`runpoint.server.api_launch`.
The OpenAPI description is served at ``/api/openapi.json`` and browsable at ``/api/docs``.
Every route follows the token's scope and project limit (:mod:`runpoint.server.access`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from .. import query
from .._version import __version__
from ..errors import InvalidArgumentError
from ..store.base import RunQuery, RunRecord
from ..store.bulk import split_column
from .access import RUN_ACCESS, visible_run
from .auth import principal, visible_project
from .context import Dashboard, StrictJSONResponse, dashboard
from .downsample import DEFAULT_BUCKETS, MAX_BUCKETS, downsample_metric, epoch_knots

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[RUN_ACCESS])

Ctx = Annotated[Dashboard, Depends(dashboard)]
# Handlers return StrictJSONResponse themselves: FastAPI's jsonable_encoder pass over a
# thousand-row table or a series of thousands of floats would cost more than the query.
MAX_RUNS = 20_000


def _columns(text: str | None) -> list[str]:
    columns = [c.strip() for c in (text or "").split(",") if c.strip()]
    for column in columns:
        try:
            split_column(column)
        except ValueError as exc:
            raise InvalidArgumentError("columns", str(exc)) from None
    return columns


def _row(run: RunRecord) -> dict[str, Any]:
    """What the runs table shows of a run (``record_dict`` minus the heavy parts, built by hand: it is per row)."""
    lines = (run.error or "").strip().splitlines()
    return {
        "id": run.id, "project": run.project, "name": run.name, "status": run.status.value, "tags": list(run.tags),
        "group": run.group, "notes": run.notes, "created_at": run.created_at, "ended_at": run.ended_at,
        "heartbeat_at": run.heartbeat_at, "duration_s": round(run.duration, 3), "resume_count": run.resume_count,
        "host": run.host, "error": lines[-1] if lines else None,  # the last line of a traceback
    }


@router.get("/info", response_model=None, summary="The root this dashboard serves")
def info(ctx: Ctx, request: Request) -> StrictJSONResponse:
    """Version, root, projects with their run counts (those the token reaches), and the entry points Launch offers."""
    only = principal(request).project
    projects = {name: count for name, count in ctx.reader.projects().items() if only is None or name == only}
    return StrictJSONResponse({
        "version": __version__,
        "root": ctx.store.location if "://" in ctx.store.location else str(ctx.root),  # a server's database, unsigned
        "projects": projects,
        "runs": ctx.store.count_runs(only),
        "entry_points": sorted(ctx.launcher.entry_points),
        "registers_models": ctx.object_store is None,  # the team server's checkpoints are registered from clients
    })


@router.get("/runs", response_model=None, summary="List runs, filtered, with picked columns")
def list_runs(
    ctx: Ctx,
    request: Request,
    project: str | None = None,
    tag: Annotated[list[str], Query(description="Runs having every tag given (repeatable).")] = [],  # noqa: B006
    status: Annotated[list[str], Query(description="running, completed, failed, killed, crashed (repeatable).")] = [],  # noqa: B006
    where: Annotated[list[str], Query(description="Filters like 'params.training.lr > 1e-4' (repeatable).")] = [],  # noqa: B006
    group: str | None = None,
    columns: Annotated[str | None, Query(description="Comma-separated params.<key>, metrics.<key>, summary.<key>.")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_RUNS)] = 5000,
) -> StrictJSONResponse:
    """Runs newest first (of the token's project, when it is limited to one). ``values`` holds the picked columns."""
    picked = _columns(columns)
    runs = query.list_runs(
        ctx.store, project=visible_project(request, project or None), tags=tag, status=status or None, where=where,
        group=group or None, limit=limit + 1,
    )
    more = len(runs) > limit
    runs = runs[:limit]
    values = ctx.reader.column_values([run.id for run in runs], picked) if picked else {}
    rows = []
    for run in runs:
        row = _row(run)
        row["values"] = values.get(run.id, {})
        rows.append(row)
    return StrictJSONResponse({"runs": rows, "more": more, "columns": picked})


@router.get("/columns", response_model=None, summary="Keys the runs table can show as columns")
def columns(ctx: Ctx, request: Request, project: str | None = None) -> StrictJSONResponse:
    """Every param, metric and summary key of the runs (of ``project``)."""
    runs = ctx.store.list_runs(RunQuery(project=visible_project(request, project or None)))
    return StrictJSONResponse(ctx.reader.column_keys([run.id for run in runs]))


@router.get("/runs/{ref}", response_model=None, summary="Everything about one run")
def run_details(ctx: Ctx, ref: str) -> StrictJSONResponse:
    """Record, flattened config, nested config, summary (derived and set), metric stats, metadata."""
    run = query.resolve_run(ctx.store, ref)
    details = query.run_details(ctx.store, run)
    details["summary_full"] = query.full_summary(ctx.store, run.id)
    details["config"] = _read_config(ctx, run)
    launch = ctx.launcher.launch_of_run(run.id)
    details["launch"] = launch.id if launch is not None else None
    return StrictJSONResponse(details)


def _read_config(ctx: Dashboard, run: RunRecord) -> Any:
    """The run's config.yaml, or None when it is missing, malformed or over the config limits."""
    from .._util.yaml import MAX_CONFIG_BYTES, read_yaml_text
    from ..errors import ConfigError

    files = ctx.run_files(run)
    try:
        text = files.read_bytes("config.yaml", limit=MAX_CONFIG_BYTES).decode("utf-8")
        return read_yaml_text(text, files.display("config.yaml")) or {}
    except (ConfigError, OSError, ValueError):  # missing, a link, too long, not UTF-8, malformed
        return None


@router.get("/runs/{ref}/state", response_model=None, summary="A run's live state, for polling")
def run_state(ctx: Ctx, ref: str) -> StrictJSONResponse:
    """Status, heartbeat and each metric's point count and last step; cheap enough to poll every second."""
    run = query.resolve_run(ctx.store, ref)
    stats = ctx.store.metric_stats(run.id)
    return StrictJSONResponse({
        "id": run.id,
        "status": run.status.value,
        "heartbeat_at": run.heartbeat_at,
        "ended_at": run.ended_at,
        "duration_s": round(run.duration, 3),
        "error": run.error,
        "metrics": {key: {"count": s.count, "last": s.last, "last_step": s.last_step} for key, s in stats.items()},
    })


@router.get("/runs/{ref}/series", response_model=None, summary="One metric, downsampled for a chart")
def series(
    ctx: Ctx,
    ref: str,
    key: Annotated[str, Query(description="Metric key, e.g. train/loss.")],
    x: Annotated[Literal["step", "time", "relative", "epoch"], Query(description="The x axis.")] = "step",
    x0: Annotated[float | None, Query(description="Start of the x range (zoom), in the axis' units.")] = None,
    x1: Annotated[float | None, Query(description="End of the x range.")] = None,
    points: Annotated[int, Query(ge=1, le=MAX_BUCKETS, description="Buckets: about the chart's width in pixels.")] = DEFAULT_BUCKETS,
    epoch_key: Annotated[str, Query(description="Metric that holds the epoch, for x=epoch.")] = "epoch",
) -> StrictJSONResponse:
    """Min and max per bucket (each at its x) plus bucket means, or every point when few.

    ``x=time`` is Unix seconds, ``relative`` seconds since the run started, ``epoch``
    fractional epochs interpolated from the ``epoch_key`` metric. Non-finite values are
    gaps (``null``).
    """
    run = query.resolve_run(ctx.store, ref)
    if key not in ctx.store.metric_keys(run.id):
        query.metric_history(ctx.store, run.id, key)  # raises the error naming the keys it has
    result = _series(ctx, run, key, x, x0, x1, points, epoch_key)
    data = result.to_dict()
    data.update({"run_id": run.id, "key": key, "axis": x})
    return StrictJSONResponse(data)


def _series(ctx: Dashboard, run: RunRecord, key: str, axis: str, x0: float | None, x1: float | None,
            points: int, epoch_key: str) -> Any:
    import numpy as np

    if axis in {"step", "time"}:
        return downsample_metric(ctx.reader, run.id, key, axis=axis, x0=x0, x1=x1, buckets=points)  # type: ignore[arg-type]
    if axis == "relative":
        origin = run.created_at
        result = downsample_metric(
            ctx.reader, run.id, key, axis="time", buckets=points,
            x0=None if x0 is None else x0 + origin, x1=None if x1 is None else x1 + origin,
        )
        shift = lambda values: [v - origin for v in values]  # noqa: E731
    else:
        if epoch_key not in ctx.store.metric_keys(run.id):
            raise InvalidArgumentError("x", f"run {run.id} has no {epoch_key!r} metric to use as the epoch axis")
        epochs = query.metric_history(ctx.store, run.id, epoch_key)
        knot_steps, knot_epochs = epoch_knots(*epochs.to_numpy()[:2])
        to_step = lambda e: None if e is None else float(np.interp(e, knot_epochs, knot_steps))  # noqa: E731
        result = downsample_metric(ctx.reader, run.id, key, axis="step", x0=to_step(x0), x1=to_step(x1), buckets=points)
        shift = lambda values: np.interp(np.asarray(values, dtype=float), knot_steps, knot_epochs).tolist()  # noqa: E731
    result.x = shift(result.x)
    result.bucket_x = shift(result.bucket_x)
    if result.x_min is not None and result.x_max is not None:
        result.x_min, result.x_max = shift([result.x_min, result.x_max])
    return result


@router.get("/compare", response_model=None, summary="Runs side by side")
def compare(
    ctx: Ctx,
    request: Request,
    runs: Annotated[list[str], Query(description="Two or more run ids, prefixes or names (repeatable).")],
) -> StrictJSONResponse:
    """Config values that differ and those that agree, each metric's last value per run."""
    refs = [part for ref in runs for part in ref.split(",") if part.strip()]
    if len(refs) < 2:
        raise InvalidArgumentError("runs", "compare needs at least two runs")
    records = [visible_run(request, ctx.store, ref) for ref in refs]  # every one checked: none is in the path
    result = query.compare(ctx.store, records).to_dict()
    result["summary"] = {}
    summaries = [ctx.store.get_summary(run.id) for run in records]
    for key in sorted(set().union(*summaries)):
        result["summary"][key] = [summary.get(key) for summary in summaries]
    return StrictJSONResponse(result)
