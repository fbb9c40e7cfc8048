"""The dashboard's FastAPI application: the JSON API and the static front end.

Example::

    from runpoint.server.app import create_app
    import uvicorn

    uvicorn.run(create_app("runpoint"), host="127.0.0.1", port=6300)

The front end (``static/``) is plain ES modules and uPlot, served from the package; no
CDN, no build step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import query
from .._version import __version__
from ..artifacts.paths import ROOT_ENV, resolve_root
from ..errors import (
    AliasConflictError,
    ConfigError,
    InvalidArgumentError,
    ModelNotFoundError,
    RunNotFoundError,
    RunpointError,
    StoreError,
)
from ..store.bulk import bulk_reader
from . import (
    api,
    api_alerts,
    api_files,
    api_groups,
    api_launch,
    api_live,
    api_models,
    prometheus,
)
from .api_docs import docs_html
from .context import Dashboard, StrictJSONResponse
from .entry_points import EntryPoint, demo_entry_point
from .launch import Launcher
from .security import Guard

STATIC = Path(__file__).parent / "static"


def create_app(
    root: str | os.PathLike[str] | None = None,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    entry_points: Iterable[EntryPoint] = (),
    include_demo: bool = True,
    tensorboard: bool = True,
) -> FastAPI:
    """The dashboard over the root ``root`` (``$RUNPOINT_ROOT`` or ``./runpoint`` when None).

    Args:
        token: when set, every request must carry it (see :mod:`runpoint.server.security`).
        loopback_only: answer only requests addressed to localhost (the server listens on loopback).
        entry_points: what Launch can start, besides the demo (``include_demo``).
        tensorboard: offer "Open in TensorBoard" (children of this process, reading this machine's files).
    """
    store = query.open_root(root)
    location = os.fspath(root) if root is not None else os.environ.get(ROOT_ENV, "")
    root_path = Path(store.location).parent if "://" in location and not location.startswith("file://") else resolve_root(root)
    entries = ([demo_entry_point()] if include_demo else []) + list(entry_points)
    app = FastAPI(
        title="runpoint dashboard",
        version=__version__,
        description="Runs, metrics, checkpoints and launches of one runpoint root.",
        docs_url=None,  # FastAPI's page loads Swagger UI from a CDN: blank offline; ours loads nothing
        redoc_url=None,
        openapi_url="/api/openapi.json",
        default_response_class=StrictJSONResponse,
    )
    app.state.dashboard = Dashboard(
        root=root_path, store=store, reader=bulk_reader(store), launcher=Launcher(root_path, entries)
    )
    routers = (api, api_files, api_launch, api_models, api_groups, api_alerts, api_live, prometheus)
    for router in (module.router for module in routers):
        app.include_router(router)
    if tensorboard:
        from .api_tensorboard import install_tensorboard

        install_tensorboard(app, root_path / ".tensorboard")
    _add_error_handlers(app)

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_html(app.openapi(), "/api/openapi.json"))

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(Guard, token=token, loopback_only=loopback_only)
    return app


def _error(status: int, message: str, **extra: object) -> JSONResponse:
    return StrictJSONResponse({"detail": message, **extra}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RunNotFoundError)
    async def not_found(request: Request, exc: RunNotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(ModelNotFoundError)
    async def no_model(request: Request, exc: ModelNotFoundError) -> JSONResponse:
        return _error(404, str(exc))

    @app.exception_handler(AliasConflictError)
    async def alias_conflict(request: Request, exc: AliasConflictError) -> JSONResponse:
        return _error(409, str(exc))

    @app.exception_handler(ConfigError)
    async def bad_config(request: Request, exc: ConfigError) -> JSONResponse:
        return _error(422, str(exc).splitlines()[0], issues=exc.issues)

    @app.exception_handler(InvalidArgumentError)
    async def bad_argument(request: Request, exc: InvalidArgumentError) -> JSONResponse:
        return _error(400, str(exc))

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError) -> JSONResponse:
        return _error(500, str(exc))

    @app.exception_handler(RunpointError)
    async def runpoint_error(request: Request, exc: RunpointError) -> JSONResponse:
        return _error(400, str(exc).splitlines()[0])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "; ".join(issues), issues=issues)
