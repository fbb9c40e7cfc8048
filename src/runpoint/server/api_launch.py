"""The dashboard's API for starting and stopping training: entry points, launches, stop.

Every route follows the token's scope and project limit (:mod:`runpoint.server.access`); a
launch belongs to the project its run records into.
"""

from __future__ import annotations

import socket
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, field_validator

from .. import query
from ..errors import ConfigError, InvalidArgumentError
from ..store.base import RunQuery
from .access import RUN_ACCESS
from .auth import audit, authorize, principal
from .context import Dashboard, dashboard
from .entry_points import deep_merge
from .launch import Launch
from .launch_limits import MAX_CONFIG_DEPTH, config_depth, launch_cwd, path_problems

router = APIRouter(prefix="/api", tags=["launch"], dependencies=[RUN_ACCESS])
Ctx = Annotated[Dashboard, Depends(dashboard)]


class LaunchRequest(BaseModel):
    """What the Launch form submits."""

    entry_point: str = Field(description="Name of the entry point, e.g. 'demo'.")
    config: dict[str, Any] = Field(
        default_factory=dict, description="The config, merged over the entry point's defaults and validated against its schema."
    )
    project: str | None = Field(default=None, description="Project to record the run in (default: the entry point's).")
    name: str = Field(default="", description="Run name; made up when empty.")

    @field_validator("config")
    @classmethod
    def _not_too_deep(cls, config: dict[str, Any]) -> dict[str, Any]:
        if config_depth(config) > MAX_CONFIG_DEPTH:
            raise ValueError(f"nests deeper than {MAX_CONFIG_DEPTH} levels; a config is a few sections of values")
        return config


class StopRequest(BaseModel):
    force: bool = Field(default=False, description="SIGKILL instead of SIGTERM: no checkpoint, the run ends as crashed.")


def _describe(ctx: Dashboard, launch: Launch) -> dict[str, Any]:
    host = socket.gethostname()
    recent = [run for run in ctx.store.list_runs(RunQuery(limit=50)) if run.host == host] if launch.run_id is None else []
    ctx.launcher.refresh(launch, recent)
    data = asdict(launch)
    data["run_status"] = None
    if launch.run_id is not None:
        try:
            data["run_status"] = query.resolve_run(ctx.store, launch.run_id).status.value
        except Exception:  # the run was deleted
            data["run_status"] = None
    return data


@router.get("/entry-points", response_model=None, summary="What the Launch page can start")
def entry_points(ctx: Ctx) -> list[dict[str, Any]]:
    """Each entry point with its config JSON schema, defaults and presets (merged over the defaults)."""
    return [entry.describe() for entry in ctx.launcher.entry_points.values()]


@router.post("/launches", response_model=None, summary="Start a training process", status_code=201)
def launch(ctx: Ctx, http: Request, request: LaunchRequest) -> dict[str, Any]:
    """Validate the config against the entry point's schema and start the process; 422 lists every problem.

    The run records into the dashboard's root: a config whose paths lead elsewhere is refused.
    """
    entry = ctx.launcher.entry_points.get(request.entry_point)
    if entry is None:
        raise InvalidArgumentError("entry_point", f"no entry point {request.entry_point!r}")
    project = request.project or entry.project
    authorize(http, "write", project)
    config = entry.validate(deep_merge(entry.defaults, request.config))
    problems = path_problems(config, ctx.root, launch_cwd(entry.cwd))
    if problems:
        raise ConfigError(problems)
    started = ctx.launcher.launch(entry.name, config, project=project, name=request.name.strip())
    audit(http, "launch.start", project=project, target=entry.name)
    return _describe(ctx, started)


@router.get("/launches", response_model=None, summary="Processes started from the dashboard")
def launches(ctx: Ctx, request: Request) -> list[dict[str, Any]]:
    """Newest first, each with its state, exit code and the run it created (of the projects the token reaches)."""
    who = principal(request)
    return [_describe(ctx, launch) for launch in ctx.launcher.list() if who.allows("read", launch.project)]


@router.get("/launches/{launch_id}", response_model=None, summary="One launch, with the tail of its output")
def launch_details(ctx: Ctx, request: Request, launch_id: str) -> dict[str, Any]:
    launch = ctx.launcher.get(launch_id)
    authorize(request, "read", launch.project)
    data = _describe(ctx, launch)
    data["output"] = ctx.launcher.output_tail(launch_id)
    return data


@router.post("/launches/{launch_id}/stop", response_model=None, summary="Stop a launched process")
def stop_launch(ctx: Ctx, http: Request, launch_id: str, request: StopRequest | None = None) -> dict[str, Any]:
    """SIGTERM to its process group: the run saves a checkpoint (if it has a manager) and ends as killed."""
    authorize(http, "write", ctx.launcher.get(launch_id).project)
    ctx.launcher.stop(launch_id, force=bool(request and request.force))
    return _describe(ctx, ctx.launcher.get(launch_id))


@router.post("/runs/{ref}/stop", response_model=None, summary="Stop a running run")
def stop_run(ctx: Ctx, http: Request, ref: str, request: StopRequest | None = None) -> dict[str, Any]:
    """SIGTERM to the run's process (or its launch's process group) on this host."""
    if not getattr(http.app.state, "signals_processes", True):
        # a team server's runs record host and pid themselves: signalling them would let a token kill any process
        raise HTTPException(403, "the team server does not signal processes; stop the run on its machine")
    run = query.resolve_run(ctx.store, ref)
    sent = ctx.launcher.stop_run(run, force=bool(request and request.force))
    audit(http, "run.stop", project=run.project, run_id=run.id, detail={"signal": sent})
    return {"id": run.id, "signal": sent}
