"""The dashboard's "Open in TensorBoard": whether a run can be opened, and opening it.

``GET /api/runs/{ref}/tensorboard`` says where TensorBoard would read the run from (its
TensorBoard sink's directory, or an export of its scalars) and the URL of a TensorBoard
already serving it. ``POST /api/tensorboard`` with ``{"runs": [...]}`` exports what needs
exporting, starts (or reuses) one TensorBoard for that set of runs and answers its URL.

Only ``runpoint ui`` installs this (:func:`install_tensorboard`): the team server does not,
since the files it would read live on the clients' machines, and a TensorBoard it started
would listen on the server's own loopback, without the server's authentication.

Example (a shell)::

    curl -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
      -d '{"runs": ["latest"]}' http://127.0.0.1:6300/api/tensorboard
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, Field

from .. import query
from ..store.base import RunRecord
from .access import RUN_ACCESS, visible_run
from .context import Dashboard, StrictJSONResponse, dashboard
from .security import ASGIApp, Receive, Scope, Send
from .tensorboard import TensorBoards
from .tensorboard_logdir import (
    CACHE_DIR,
    RunLogdir,
    export_dir,
    export_scalars,
    run_logdir,
    safe_name,
)

router = APIRouter(prefix="/api", tags=["tensorboard"], dependencies=[RUN_ACCESS])
Ctx = Annotated[Dashboard, Depends(dashboard)]
MAX_RUNS = 20


class OpenRequest(BaseModel):
    runs: list[str] = Field(min_length=1, max_length=MAX_RUNS, description="Run ids, id prefixes or names.")


def _boards(request: Request) -> TensorBoards:
    return request.app.state.tensorboards  # type: ignore[no-any-return]


def _label(run: RunRecord, taken: dict[str, Any]) -> str:
    label = safe_name(run.name)
    return label if label not in taken else f"{label}-{run.id[:8]}"


@router.get("/runs/{ref}/tensorboard", response_model=None, summary="Where TensorBoard would read a run from")
def tensorboard_of_run(ctx: Ctx, request: Request, ref: str) -> StrictJSONResponse:
    """``source``: ``sink`` (the run's TensorBoard sink directory) or ``export`` (its scalars, exported on
    opening); ``url``: a TensorBoard of this dashboard serving the run, or null."""
    run = query.resolve_run(ctx.store, ref)
    found = run_logdir(ctx, run) or RunLogdir(export_dir(ctx.root / CACHE_DIR, run), "export")
    board = _boards(request).running({safe_name(run.name): found.path})
    return StrictJSONResponse({
        "run_id": run.id, "source": found.source, "logdir": str(found.path),
        "url": board.url if board else None, "pid": board.pid if board else None,
    })


@router.post("/tensorboard", response_model=None, summary="Open runs in TensorBoard")
def open_tensorboard(ctx: Ctx, request: Request, body: OpenRequest) -> StrictJSONResponse:
    """Start a TensorBoard for these runs, or reuse the one serving them; answers once it listens (seconds)."""
    runs = list({run.id: run for run in (visible_run(request, ctx.store, ref) for ref in body.runs)}.values())
    logdirs: dict[str, Path] = {}
    sources: dict[str, str] = {}
    for run in runs:
        found = run_logdir(ctx, run) or export_scalars(ctx.store, run, ctx.root / CACHE_DIR)
        label = _label(run, logdirs)
        logdirs[label], sources[label] = found.path, found.source
    board, reused = _boards(request).open(logdirs)
    return StrictJSONResponse({
        "url": board.url, "pid": board.pid, "reused": reused,
        "logdirs": {label: str(path) for label, path in logdirs.items()}, "sources": sources,
    })


class _StopOnShutdown:
    """ASGI middleware: stop the TensorBoards when the server shuts down (lifespan)."""

    def __init__(self, app: ASGIApp, *, boards: TensorBoards) -> None:
        self.app = app
        self.boards = boards

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def on_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                import anyio.to_thread

                await anyio.to_thread.run_sync(self.boards.stop_all)
            await send(message)

        await self.app(scope, receive, on_send)


def install_tensorboard(app: FastAPI, cache: Path) -> TensorBoards:
    """Add the routes to ``app``, with TensorBoards whose logs and exports live in ``cache``; stopped at shutdown."""
    boards = TensorBoards(cache)
    app.state.tensorboards = boards
    app.include_router(router)
    app.add_middleware(_StopOnShutdown, boards=boards)
    return boards
