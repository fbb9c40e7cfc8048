"""The dashboard's API over a run's files: console logs, checkpoints and media.

The files are read through the dashboard's :class:`~runpoint.artifacts.Artifacts` (the
local root, or the team server's object store) by :class:`~.run_files.RunFiles`: absolute
paths, ``..`` and (locally) symbolic links below the root are refused with 404
(indistinguishable from a missing file). Every route follows the token's scope and project
limit (:mod:`runpoint.server.access`); reading a console log or a file, and verifying a
checkpoint, are audited as the files API's reads are.
"""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any, BinaryIO, Iterator

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from .. import query
from ..errors import InvalidArgumentError, RunpointError
from ..logs.events_text import readable_events
from ..logs.segments import (
    CONSOLE_LOG_NAME,
    RUNPOINT_LOG_NAME,
    log_size,
    logical_logs,
    tail_log,
)
from ..run.console import clean_console
from ..store.base import RunRecord
from .access import RUN_ACCESS
from .auth import audit
from .context import Dashboard, StrictJSONResponse, dashboard
from .run_files import RunFiles
from .verify import verify_in_child

router = APIRouter(prefix="/api/runs/{ref}", tags=["run files"], dependencies=[RUN_ACCESS])
Ctx = Annotated[Dashboard, Depends(dashboard)]

SERVED_DIRS = ("media",)  # what /files may serve from a run's directory
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "text/plain", "application/json"}
CHUNK = 2**20
DASHBOARD = {"via": "dashboard"}  # the audit entry's detail: read through the dashboard, not the files API


def _run(ctx: Dashboard, ref: str) -> tuple[RunRecord, RunFiles]:
    run = query.resolve_run(ctx.store, ref)
    return run, ctx.run_files(run)


class _RunLogs:
    """A run's ``logs/`` folder as :mod:`runpoint.logs.segments` reads it, through the dashboard's files."""

    def __init__(self, files: RunFiles) -> None:
        self._files = files

    def sizes(self) -> dict[str, int]:
        return {name: size for name, size in self._files.list("logs") if "/" not in name}

    def open(self, name: str) -> BinaryIO:
        return self._files.open(f"logs/{name}")


@router.get("/console", response_model=None, summary="The tail of a run's console log")
def console(
    ctx: Ctx,
    request: Request,
    ref: str,
    file: Annotated[str | None, Query(description="console.log, console_resume_<N>.log, or runpoint.log (runpoint's "
                                                   "own events); default: the newest console log.")] = None,
    max_bytes: Annotated[int, Query(ge=1, le=4_000_000)] = 200_000,
) -> StrictJSONResponse:
    """The last ``max_bytes`` of one console log (read across its segments), cleaned of terminal control codes."""
    run, files = _run(ctx, ref)
    folder = _RunLogs(files)
    sizes = folder.sizes()
    consoles = logical_logs(sizes)
    runpoint_logs = sorted(name for name in sizes if RUNPOINT_LOG_NAME.match(name))
    logs = [{"name": name, "bytes": log_size(folder, name, sizes)} for name in consoles]
    logs += [{"name": name, "bytes": sizes[name], "runpoint": True} for name in runpoint_logs]
    if not logs:
        return StrictJSONResponse({"files": [], "file": None, "text": "", "bytes": 0, "truncated": False})
    name = str(file or (consoles or runpoint_logs)[-1])
    if not (CONSOLE_LOG_NAME.match(name) or RUNPOINT_LOG_NAME.match(name)):
        raise InvalidArgumentError("file", f"{name!r} is not a console log")
    if name not in consoles and name not in runpoint_logs:
        raise HTTPException(404, f"run {run.id} has no {name}")
    try:
        data, size = tail_log(folder, name, max_bytes)
    except (OSError, InvalidArgumentError):
        raise HTTPException(404, f"run {run.id} has no {name}") from None
    audit(request, "files.get", project=run.project, run_id=run.id, target=f"logs/{name}", detail=DASHBOARD)
    text = data.decode("utf-8", "replace")
    _, newline, rest = text.partition("\n")
    if size > max_bytes and newline and rest:
        text = rest  # drop the partial first line
    text = readable_events(text) if RUNPOINT_LOG_NAME.match(name) else clean_console(text)
    return StrictJSONResponse({"files": logs, "file": name, "text": text, "bytes": size, "truncated": size > max_bytes})


def _pointer(files: RunFiles, name: str) -> str | None:
    """The checkpoint a pointer names; None if it is missing, a link, or names no checkpoint."""
    from ..checkpoint.atomic import read_pointer

    return read_pointer(files.artifacts, files.path(f"checkpoints/{name}"))


def _checkpoint_state(files: RunFiles, row: dict[str, Any]) -> str:
    from ..artifacts.manifest import MANIFEST_NAME

    if row.get("deleted_at") is not None:
        return "deleted"
    if "://" in row["path"]:
        return "remote"
    return "present" if files.is_file(f"{row['path'].rstrip('/')}/{MANIFEST_NAME}") else "missing"


@router.get("/checkpoints", response_model=None, summary="A run's checkpoints")
def checkpoints(ctx: Ctx, ref: str) -> StrictJSONResponse:
    """Registry rows (step, size, metrics, best) with whether the files are there, and the pointers."""
    run, files = _run(ctx, ref)
    rows = ctx.reader.checkpoint_rows(run.id)
    for row in rows:
        row["state"] = _checkpoint_state(files, row)
    return StrictJSONResponse({"checkpoints": rows, "latest": _pointer(files, "latest"), "best": _pointer(files, "best")})


@router.post("/checkpoints/{step}/verify", response_model=None, summary="Re-hash a checkpoint's files against its manifest")
def verify_checkpoint(ctx: Ctx, request: Request, ref: str, step: int) -> StrictJSONResponse:
    """The same check as ``runpoint ckpt verify``: every file's size and hash against the manifest.

    It runs in a child process with a time limit (:mod:`runpoint.server.verify`): 504 when it is up.
    """
    from ..artifacts.manifest import MANIFEST_NAME
    from ..checkpoint.directory import read_manifest

    run, files = _run(ctx, ref)
    row = next((r for r in ctx.reader.checkpoint_rows(run.id) if r["step"] == step), None)
    if row is None:
        raise HTTPException(404, f"run {run.id} has no checkpoint at step {step}")
    if "://" in row["path"]:
        problem = f"{row['path']} is remote: verify it with `runpoint ckpt verify {run.id}`"
        return StrictJSONResponse({"step": step, "ok": False, "files_checked": 0, "problems": [problem]})
    relative = row["path"].rstrip("/")
    if not files.is_file(f"{relative}/{MANIFEST_NAME}"):  # nothing outside the run
        return StrictJSONResponse({"step": step, "ok": False, "files_checked": 0, "problems": ["the checkpoint's files are gone"]})
    audit(request, "checkpoint.verify", project=run.project, run_id=run.id, target=str(step), detail=DASHBOARD)
    # the path as the run names it, not resolved: links below the checkpoints folder are refused, not followed
    problems = verify_in_child(files.display(relative))
    try:
        checked = len(read_manifest(files.artifacts, files.path(relative)).files)
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


def _chunks(handle: Any) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(CHUNK):
            yield bytes(chunk)


@router.get("/files/{path:path}", summary="A media file of a run", response_class=StreamingResponse)
def run_file(ctx: Ctx, request: Request, ref: str, path: str) -> StreamingResponse:
    """A file under the run's ``media/`` folder; nothing outside it is ever served."""
    run, files = _run(ctx, ref)
    folder, _, inner = path.partition("/")
    if folder not in SERVED_DIRS:
        raise HTTPException(404, "not found")
    try:
        handle = files.open(f"{folder}/{inner}")  # a symlink in media/ may not lead elsewhere in the run
    except (OSError, InvalidArgumentError):
        raise HTTPException(404, "not found") from None
    try:
        size = handle.seek(0, 2)
        handle.seek(0)
    except BaseException:
        handle.close()
        raise
    audit(request, "files.get", project=run.project, run_id=run.id, target=f"{folder}/{inner}", detail=DASHBOARD)
    name = inner.rpartition("/")[2]
    media_type = mimetypes.guess_type(name)[0]
    headers = {"content-length": str(size), "x-content-type-options": "nosniff"}
    if media_type in INLINE_TYPES:
        return StreamingResponse(_chunks(handle), media_type=media_type, headers=headers)
    # Anything else is downloaded, never rendered as a page of the dashboard's origin.
    from urllib.parse import quote

    headers["content-disposition"] = f"attachment; filename*=utf-8''{quote(name)}"
    return StreamingResponse(_chunks(handle), media_type="application/octet-stream", headers=headers)
