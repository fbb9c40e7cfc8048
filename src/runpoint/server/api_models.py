"""The dashboard's JSON API over the model registry: models, their versions, aliases and alias moves.

Reads go through the store's :class:`~runpoint.store.base.ModelRegistry`; registering a
checkpoint goes through :func:`runpoint.models.register_model`, which checks the checkpoint
and records its lineage, as ``rp.register_model`` does. A project-limited token sees and
registers only its own project's models.

Example::

    GET  /api/models                       -> {"models": [{"name": "digits", "latest": 3, "aliases": {...}}]}
    GET  /api/models/digits                -> {"model": ..., "versions": [...], "aliases": [...], "history": [...]}
    POST /api/runs/<id>/checkpoints/400/register  {"name": "digits", "alias": "staging"}
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from ..store.model_records import ModelRecord, to_wire
from ..store.registry import model_registry
from .access import RUN_ACCESS
from .auth import authorize, visible_project
from .context import Dashboard, StrictJSONResponse, dashboard

router = APIRouter(prefix="/api", tags=["models"], dependencies=[RUN_ACCESS])

Ctx = Annotated[Dashboard, Depends(dashboard)]


def _registry(ctx: Dashboard) -> Any:
    registry = model_registry(ctx.store)
    if registry is None:
        raise HTTPException(501, f"the store at {ctx.store.location} keeps no model registry")
    return registry


def _summary(registry: Any, model: ModelRecord) -> dict[str, Any]:
    versions = registry.list_versions(model.name)
    aliases = {a.alias: a.version for a in registry.list_aliases(model.name)}
    latest = versions[-1] if versions else None
    return {
        **to_wire(model), "versions": len(versions), "aliases": aliases,
        "latest": latest.version if latest else None,
        "latest_registered_at": latest.registered_at if latest else None,
    }


@router.get("/models", response_model=None, summary="Registered models with their latest version and aliases")
def list_models(ctx: Ctx, request: Request, project: str | None = None) -> StrictJSONResponse:
    registry = _registry(ctx)
    models = registry.list_models(visible_project(request, project or None))
    return StrictJSONResponse({"models": [_summary(registry, model) for model in models]})


@router.get("/models/{name}", response_model=None, summary="One model: versions with lineage, aliases, alias history")
def show_model(ctx: Ctx, request: Request, name: str) -> StrictJSONResponse:
    registry = _registry(ctx)
    model = registry.get_model(name)
    authorize(request, "read", model.project)
    return StrictJSONResponse({
        "model": to_wire(model),
        "versions": [to_wire(v) for v in registry.list_versions(name)],
        "aliases": [to_wire(a) for a in registry.list_aliases(name)],
        "history": [to_wire(e) for e in registry.alias_history(name)],
    })


@router.get("/runs/{run_id}/models", response_model=None, summary="The model versions registered from a run's checkpoints")
def run_models(ctx: Ctx, request: Request, run_id: str) -> StrictJSONResponse:
    run = ctx.store.get_run(run_id)
    authorize(request, "read", run.project)
    registry = model_registry(ctx.store)
    versions = registry.versions_of_run(run_id) if registry is not None else []
    return StrictJSONResponse({"versions": [to_wire(v) for v in versions]})


class RegisterBody(BaseModel):
    """What the Checkpoints tab's Register form sends."""

    name: str = Field(description="The model: letters, digits, '.', '_', '-'; created on its first version.")
    alias: str | None = Field(None, description="Also point this alias (champion, staging...) at the new version.")
    description: str = ""
    tags: list[str] = []


@router.post("/runs/{run_id}/checkpoints/{step}/register", response_model=None,
             summary="Register a run's checkpoint as the next version of a model")
def register(ctx: Ctx, request: Request, run_id: str, step: int, body: RegisterBody) -> StrictJSONResponse:
    """Checks the checkpoint (every file's hash) and records its lineage, as ``rp.register_model`` does."""
    from ..models import register_model

    run = ctx.store.get_run(run_id)
    authorize(request, "write", run.project)
    if ctx.object_store is not None:
        # the checkpoint's files are in the object store, which register_model reads through a client
        raise HTTPException(501, "register this checkpoint from a client: "
                                 f"runpoint models register {body.name} {run_id}:step={step} --root <this server's URL>")
    version = register_model(body.name, run_id, step=step, alias=body.alias or None, description=body.description,
                             tags=body.tags, root=ctx.root)
    return StrictJSONResponse({**to_wire(version), "alias": body.alias or None})
