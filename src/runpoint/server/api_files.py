"""The dashboard's API over a run's files: console logs, checkpoints and media.

Every path is resolved inside the run's directory (:func:`~.security.resolve_inside`):
absolute paths, ``..`` and symlinks that lead out are refused with 404 (indistinguishable
from a missing file).
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import FileResponse

from .. import query
from ..errors import InvalidArgumentError, RunpointError
from ..run.console import CONSOLE_LOG_NAME, clean_console, console_logs
from ..store.base import RunRecord
from .context import Dashboard, StrictJSONResponse, dashboard
from .security import resolve_inside
from .verify import verify_in_child

router = APIRouter(prefix="/api/runs/{ref}", tags=["run files"])
Ctx = Annotated[Dashboard, Depends(dashboard)]

SERVED_DIRS = ("media",)  # what /files may serve from a run's directory
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/json"}


def _run(ctx: Dashboard, ref: str) -> tuple[RunRecord, Path]:
    run = query.resolve_run(ctx.store, ref)
    return run, ctx.run_dir(run)



@router.get("/console", response_model=None, summary="The tail of a run's console log")
def console(
    ctx: Ctx,
    ref: str,
    file: Annotated[str | None, Query(description="console.log or console_resume_<N>.log; default: the newest.")] = None,
    max_bytes: Annotated[int, Query(ge=1, le=4_000_000)] = 200_000,
) -> StrictJSONResponse:
    """The last ``max_bytes`` of one console log, cleaned of terminal control codes."""
    run, directory = _run(ctx, ref)
    files = [{"name": path.name, "bytes": path.stat().st_size} for path in console_logs(directory / "logs")]
    if not files:
        return StrictJSONResponse({"files": [], "file": None, "text": "", "bytes": 0, "truncated": False})
    name = str(file or files[-1]["name"])
    if not CONSOLE_LOG_NAME.match(name):
        raise InvalidArgumentError("file", f"{name!r} is not a console log")
    try:
        path = resolve_inside(directory, f"logs/{name}")
    except InvalidArgumentError:
        raise HTTPException(404, f"run {run.id} has no {name}") from None
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - max_bytes))
        data = handle.read()
    text = data.decode("utf-8", "replace")
    _, newline, rest = text.partition("\n")
    if size > max_bytes and newline and rest:
        text = rest  # drop the partial first line
    return StrictJSONResponse({"files": files, "file": name, "text": clean_console(text), "bytes": size, "truncated": size > max_bytes})




def _pointer(directory: Path, name: str) -> str | None:
    """The checkpoint a pointer names; None if it is missing, a link, or names no checkpoint."""
    from ..artifacts.storage import open_artifacts
    from ..checkpoint.atomic import read_pointer

    return read_pointer(open_artifacts(directory / "checkpoints"), name)


def _checkpoint_state(directory: Path, row: dict[str, Any]) -> str:
    if row.get("deleted_at") is not None:
        return "deleted"
    if "://" in row["path"]:
        return "remote"
    try:
        folder = resolve_inside(directory, row["path"].rstrip("/") + "/manifest.json").parent
    except InvalidArgumentError:
        return "missing"
    return "present" if folder.is_dir() else "missing"


@router.get("/checkpoints", response_model=None, summary="A run's checkpoints")
def checkpoints(ctx: Ctx, ref: str) -> StrictJSONResponse:
    """Registry rows (step, size, metrics, best) with whether the files are there, and the pointers."""
    run, directory = _run(ctx, ref)
    rows = ctx.reader.checkpoint_rows(run.id)
    for row in rows:
        row["state"] = _checkpoint_state(directory, row)
    return StrictJSONResponse({"checkpoints": rows, "latest": _pointer(directory, "latest"), "best": _pointer(directory, "best")})


@router.post("/checkpoints/{step}/verify", response_model=None, summary="Re-hash a checkpoint's files against its manifest")
def verify_checkpoint(ctx: Ctx, ref: str, step: int) -> StrictJSONResponse:
    """The same check as ``runpoint ckpt verify``: every file's size and hash against the manifest.

    It runs in a child process with a time limit (:mod:`runpoint.server.verify`): 504 when it is up.
    """
    from ..artifacts.storage import open_artifacts
    from ..checkpoint.directory import read_manifest
    from ..checkpoint.manifest import MANIFEST_NAME

    run, directory = _run(ctx, ref)
    row = next((r for r in ctx.reader.checkpoint_rows(run.id) if r["step"] == step), None)
    if row is None:
        raise HTTPException(404, f"run {run.id} has no checkpoint at step {step}")
    if "://" in row["path"]:
        problem = f"{row['path']} is remote: verify it with `runpoint ckpt verify {run.id}`"
        return StrictJSONResponse({"step": step, "ok": False, "files_checked": 0, "problems": [problem]})
    relative = row["path"].rstrip("/")
    try:
        resolve_inside(directory, f"{relative}/{MANIFEST_NAME}")  # nothing outside the run
    except InvalidArgumentError:
        return StrictJSONResponse({"step": step, "ok": False, "files_checked": 0, "problems": ["the checkpoint's files are gone"]})
    # the path as the run names it, not resolved: links below the checkpoints folder are refused, not followed
    problems = verify_in_child(directory / relative)
    parent, _, name = (directory / relative).as_posix().rpartition("/")
    try:
        checked = len(read_manifest(open_artifacts(parent), name).files)
    except RunpointError:
        checked = 0
    return StrictJSONResponse({"step": step, "ok": not problems, "files_checked": checked, "problems": problems})


@router.get("/media", response_model=None, summary="A run's logged media")
def media(ctx: Ctx, ref: str) -> StrictJSONResponse:
    """Images, histograms, text and tables, by key and step; files are fetched from ``/files/<path>``."""
    run, _ = _run(ctx, ref)
    rows = ctx.reader.media_rows(run.id)
    for row in rows:
        row["url"] = f"/api/runs/{run.id}/files/{row['path']}" if row.get("path") else None
    return StrictJSONResponse({"media": rows})


@router.get("/files/{path:path}", summary="A media file of a run", response_class=FileResponse)
def run_file(ctx: Ctx, ref: str, path: str) -> FileResponse:
    """A file under the run's ``media/`` folder; nothing outside it is ever served."""
    run, directory = _run(ctx, ref)
    folder, _, inner = path.partition("/")
    if folder not in SERVED_DIRS:
        raise HTTPException(404, "not found")
    try:
        target = resolve_inside(directory / folder, inner)  # a symlink in media/ may not lead elsewhere in the run
    except InvalidArgumentError:
        raise HTTPException(404, "not found") from None
    media_type = mimetypes.guess_type(target.name)[0]
    if media_type in INLINE_TYPES:
        return FileResponse(target, media_type=media_type)
    # Anything else is downloaded, never rendered as a page of the dashboard's origin.
    return FileResponse(target, media_type="application/octet-stream", filename=target.name)
