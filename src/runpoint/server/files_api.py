"""The files API of the team server: a run's files on the object store.

    PUT    /api/store/runs/{run_id}/files/{path}             raw body, streamed to the store
    GET    /api/store/runs/{run_id}/files/{path}             the bytes (one ``Range`` honoured)
    GET    /api/store/runs/{run_id}/files?prefix=            [{"path", "bytes"}]
    DELETE /api/store/runs/{run_id}/files?prefix=            remove a prefix (manifests first)
    POST   /api/store/runs/{run_id}/files/{path}/upload-url  a presigned PUT, or 404 {"proxy": true}
    POST   /api/store/runs/{run_id}/files/{path}/download-url  a presigned GET, or 404 {"proxy": true}

A PUT may carry ``x-runpoint-xxh3`` (the xxh3-128 hex of the file, as checkpoint manifests
record it): the body is hashed as it streams and a mismatch answers 400 with nothing
stored. Paths are checked by :func:`runpoint.store.wire.check_relative_path` before they
reach the store. Every route authorizes against the run's project (``project_of``) and is audited.

Example::

    app.include_router(files_router(ObjectStore.open("s3://bucket/runpoint"), project_of))
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any, Callable, Iterator

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from ..artifacts.storage import FileSink, NotRegularFileError
from ..errors import InvalidArgumentError, RunNotFoundError
from .auth import Scope, audit, authorize
from .object_store import ObjectStore, check_name

HASH_HEADER = "x-runpoint-xxh3"
WRITE_CHUNK = 8 * 2**20  # bytes gathered from the request before one write to the store
READ_CHUNK = 2**20
_HEX128 = re.compile(r"[0-9a-f]{32}")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class UploadUrlRequest(BaseModel):
    size: int = Field(ge=0, description="The file's size in bytes (the PUT must send exactly that many).")
    xxh3: str | None = Field(default=None, description="The file's xxh3-128 hex, recorded with the object.")


@contextlib.contextmanager
def _http_errors() -> Iterator[None]:
    """Client mistakes as HTTP errors, whatever exception handlers the app has."""
    try:
        yield
    except InvalidArgumentError as exc:
        raise HTTPException(400, str(exc)) from None
    except RunNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except (FileNotFoundError, NotRegularFileError, IsADirectoryError, NotADirectoryError):
        raise HTTPException(404, "no such file") from None


def _expected_hash(request: Request) -> str | None:
    value = request.headers.get(HASH_HEADER)
    if value is None:
        return None
    if not _HEX128.fullmatch(value.lower()):
        raise HTTPException(400, f"{HASH_HEADER} must be 32 hex digits (xxh3-128)")
    return value.lower()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=a-b``; None for the whole file; 416 if unsatisfiable."""
    match = _RANGE.fullmatch(header.strip()) if header else None
    if match is None or match.group(1) == match.group(2) == "":
        return None
    first, last = match.group(1), match.group(2)
    if first == "":
        start, end = max(0, size - int(last)), size - 1
    else:
        start, end = int(first), min(size - 1, int(last)) if last else size - 1
    if start >= size or start > end:
        raise HTTPException(416, f"the file has {size} bytes", headers={"content-range": f"bytes */{size}"})
    return start, end


def _stream(handle: Any, start: int, length: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        left = length
        while left > 0:
            chunk = handle.read(min(READ_CHUNK, left))
            if not chunk:
                break
            left -= len(chunk)
            yield bytes(chunk)
    finally:
        handle.close()


async def _receive(request: Request, sink: FileSink, digest: Any) -> int:
    """Hash the request's body into ``digest`` and write it to ``sink``; the byte count.

    Writing (an S3 part upload) overlaps receiving the next chunk: one writer task drains a
    queue of two chunks, so the body streams at the slower of the two, not their sum. Every
    write has finished when this returns or raises.
    """
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2)

    async def drain() -> None:
        while (chunk := await queue.get()) is not None:
            await run_in_threadpool(sink.write, chunk)

    writer = asyncio.ensure_future(drain())

    async def send(item: bytes | None) -> None:
        put = asyncio.ensure_future(queue.put(item))
        await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
        if not put.done():
            put.cancel()
            writer.result()  # the writer failed: its error

    size, pending = 0, bytearray()
    try:
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            pending += chunk
            if len(pending) >= WRITE_CHUNK:
                await send(bytes(pending))
                pending.clear()
        if pending:
            await send(bytes(pending))
        await send(None)
        await writer
    finally:
        if not writer.done():  # an error while receiving: let the writer finish what it holds, then stop
            with contextlib.suppress(BaseException):
                while not writer.done():
                    with contextlib.suppress(asyncio.QueueFull):
                        queue.put_nowait(None)
                    await asyncio.wait({writer}, timeout=0.1)
    return size


def files_router(files: ObjectStore, project_of: Callable[[str], str], *, prefix: str = "/api/store") -> APIRouter:  # long: one closure per route, sharing the store and the lookup
    """The files API over ``files``; ``project_of(run_id)`` names a run's project (RunNotFoundError: 404)."""
    router = APIRouter(prefix=prefix, tags=["run files (team server)"])

    def project(request: Request, run_id: str, needed: Scope) -> str:
        with _http_errors():
            name = project_of(check_name(run_id, "run id"))
        authorize(request, needed, name)
        return name

    @router.put("/runs/{run_id}/files/{path:path}", summary="Upload a run's file (raw body)")
    async def put_file(request: Request, run_id: str, path: str) -> JSONResponse:
        owner = await run_in_threadpool(project, request, run_id, "write")
        expected = _expected_hash(request)
        with _http_errors():
            sink = await run_in_threadpool(files.writer, owner, run_id, path)
        import xxhash

        digest = xxhash.xxh3_128()
        try:
            size = await _receive(request, sink, digest)
            if expected is not None and digest.hexdigest() != expected:
                raise HTTPException(400, f"the body's xxh3 is {digest.hexdigest()}, {HASH_HEADER} says {expected}: nothing stored")
            await run_in_threadpool(sink.close)
        except BaseException as exc:
            await run_in_threadpool(sink.abort)
            if isinstance(exc, InvalidArgumentError):
                raise HTTPException(400, str(exc)) from None
            if isinstance(exc, OSError):  # the location failed, not the client: say so, without its paths
                raise HTTPException(503, f"the server could not store the file ({type(exc).__name__}); nothing stored") from None
            raise
        audit(request, "files.put", project=owner, run_id=run_id, target=path, detail={"bytes": size})
        return JSONResponse({"path": path, "bytes": size, "xxh3": digest.hexdigest()}, status_code=201)

    @router.get("/runs/{run_id}/files/{path:path}", summary="Download a run's file", response_model=None)
    def get_file(request: Request, run_id: str, path: str) -> StreamingResponse:
        owner = project(request, run_id, "read")
        with _http_errors():
            handle = files.open_read(owner, run_id, path)
        try:
            size = handle.seek(0, 2)
            span = _byte_range(request.headers.get("range"), size)
        except BaseException:
            handle.close()
            raise
        start, end = span if span is not None else (0, size - 1)
        headers = {"content-length": str(end - start + 1), "accept-ranges": "bytes", "x-content-type-options": "nosniff"}
        if span is not None:
            headers["content-range"] = f"bytes {start}-{end}/{size}"
        audit(request, "files.get", project=owner, run_id=run_id, target=path)
        return StreamingResponse(_stream(handle, start, end - start + 1), status_code=206 if span else 200,
                                 media_type="application/octet-stream", headers=headers)

    @router.get("/runs/{run_id}/files", summary="List a run's files")
    def list_files(request: Request, run_id: str, prefix: str = Query("", max_length=1024)) -> dict[str, Any]:
        owner = project(request, run_id, "read")
        with _http_errors():
            entries = files.list(owner, run_id, prefix)
        audit(request, "files.list", project=owner, run_id=run_id, target=prefix or None)
        return {"files": [{"path": path, "bytes": size} for path, size in entries]}

    @router.delete("/runs/{run_id}/files", summary="Delete a run's files under a prefix")
    def delete_files(request: Request, run_id: str, prefix: str = Query(..., min_length=1, max_length=1024)) -> dict[str, Any]:
        owner = project(request, run_id, "write")
        with _http_errors():
            removed = files.delete_prefix(owner, run_id, prefix)
        audit(request, "files.delete", project=owner, run_id=run_id, target=prefix, detail={"files": removed})
        return {"deleted": removed}

    @router.post("/runs/{run_id}/files/{path:path}/upload-url", summary="A presigned PUT for a run's file",
                 response_model=None)
    def upload_url(request: Request, run_id: str, path: str, body: UploadUrlRequest) -> Any:
        owner = project(request, run_id, "write")
        if body.xxh3 is not None and not _HEX128.fullmatch(body.xxh3):
            raise HTTPException(400, "xxh3 must be 32 lowercase hex digits")
        with _http_errors():
            signed = files.presign_put(owner, run_id, path, size=body.size, xxh3=body.xxh3)
        if signed is None:
            return JSONResponse({"detail": "this server's file location cannot presign uploads: PUT the file to the server",
                                 "proxy": True}, status_code=404)
        audit(request, "files.upload_url", project=owner, run_id=run_id, target=path, detail={"bytes": body.size})
        return {"method": signed.method, "url": signed.url, "headers": signed.headers, "expires_in": signed.expires_in}

    @router.post("/runs/{run_id}/files/{path:path}/download-url", summary="A presigned GET for a run's file",
                 response_model=None)
    def download_url(request: Request, run_id: str, path: str) -> Any:
        owner = project(request, run_id, "read")
        with _http_errors():
            files.size(owner, run_id, path)  # 404 here rather than from the object store
            signed = files.presign_get(owner, run_id, path)
        if signed is None:
            return JSONResponse({"detail": "this server's file location cannot presign downloads: GET the file from the server",
                                 "proxy": True}, status_code=404)
        audit(request, "files.download_url", project=owner, run_id=run_id, target=path)
        return {"method": signed.method, "url": signed.url, "headers": signed.headers, "expires_in": signed.expires_in}

    return router
