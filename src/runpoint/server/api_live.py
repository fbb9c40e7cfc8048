"""``GET /api/runs/{ref}/stream``: a running run's new points as Server-Sent Events.

The run page opens it with ``EventSource`` (which sends the cookie: the token check of
:mod:`runpoint.server.security`, or the team server's accounts, apply as to every route) and
falls back to polling ``/state`` when it fails. Each stream polls the store every
:data:`POLL_S` through :class:`~runpoint.server.live.RunFollower`, in worker threads of its
own limiter (:data:`STORE_THREADS`), so streams never take the threads the other routes
run on; a comment every :data:`KEEPALIVE_S` keeps idle connections open. A stream ends when
the run ends (after its last points), when the client goes away (Starlette cancels the
response as the server reports the disconnect; a server that reports it only on writes is
told by the next keepalive), or at shutdown. At most
:data:`MAX_STREAMS` are open at once; beyond that the answer is 503 and the page polls.

Example (a shell)::

    curl -N -H "Authorization: Bearer $TOKEN" \\
      'http://127.0.0.1:6300/api/runs/latest/stream?after={"train/loss":99}'
"""

from __future__ import annotations

import time
from typing import Annotated, Any, AsyncIterator

import anyio
import anyio.to_thread
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from .. import query
from ..errors import InvalidArgumentError, RunpointError
from .access import RUN_ACCESS
from .auth import authorize
from .context import dashboard
from .live import RunFollower, parse_after, sse, sse_comment

router = APIRouter(prefix="/api", tags=["runs"], dependencies=[RUN_ACCESS])

POLL_S = 0.25
KEEPALIVE_S = 15.0
MAX_STREAMS = 32
STORE_THREADS = 4


class StreamSlots:
    """How many streams are open, against :data:`MAX_STREAMS`; the threads their store reads share."""

    def __init__(self, limit: int = MAX_STREAMS, threads: int = STORE_THREADS) -> None:
        self.limit = limit
        self.open = 0
        self.ending = False  # the server is stopping: streams end at their next poll
        self.limiter = anyio.CapacityLimiter(threads)

    @property
    def full(self) -> bool:
        return self.open >= self.limit


def stream_slots(app: Any) -> StreamSlots:
    """The app's :class:`StreamSlots`, made on first use."""
    slots: StreamSlots | None = getattr(app.state, "live_streams", None)
    if slots is None:
        slots = app.state.live_streams = StreamSlots()
    return slots


def end_streams_on_exit(server: Any, app: Any) -> None:
    """Make the uvicorn ``server`` end ``app``'s streams as soon as it is told to stop.

    uvicorn waits for open responses before it shuts down (then cancels them, with a
    traceback): a stream that never ends would hold Ctrl-C for the whole grace period.
    """
    handle_exit = server.handle_exit

    def handle(sig: int, frame: Any) -> None:
        stream_slots(app).ending = True
        handle_exit(sig, frame)

    server.handle_exit = handle


@router.get("/runs/{ref}/stream", response_class=StreamingResponse, summary="A run's new points, live (SSE)")
async def stream(
    request: Request,
    ref: str,
    after: Annotated[str | None, Query(description='JSON: per metric key, the last step the client has, '
                                                   'e.g. {"train/loss": 99}. Points after it are sent.')] = None,
    since: Annotated[int | None, Query(description="The last step the client has of keys not in after; "
                                                   "none: every point of those keys.")] = None,
) -> StreamingResponse:
    """``text/event-stream`` of ``state``, ``metrics``, ``reload`` and ``end`` events (see :mod:`runpoint.server.live`)."""
    ctx = dashboard(request)
    slots = stream_slots(request.app)
    try:
        cursor = parse_after(after)
    except ValueError as exc:
        raise InvalidArgumentError("after", str(exc)) from None
    run = await anyio.to_thread.run_sync(query.resolve_run, ctx.store, ref, limiter=slots.limiter)
    authorize(request, "read", run.project)
    if slots.full:
        raise HTTPException(503, f"{slots.limit} live streams are open already; the page polls instead")
    follower = RunFollower(ctx.store, run.id, after=cursor, since=since)
    return StreamingResponse(
        _events(follower, slots), media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},  # no proxy buffering
    )


async def _events(follower: RunFollower, slots: StreamSlots) -> AsyncIterator[bytes]:
    slots.open += 1  # counted here, not in the route: a response never started never reaches the finally
    try:
        yield b"retry: 2000\n\n"  # sent at once: the browser sees the stream open
        quiet_since = time.monotonic()
        while True:
            try:
                events = await anyio.to_thread.run_sync(follower.poll, limiter=slots.limiter)
            except RunpointError as exc:  # the run was deleted, the database went away...
                yield sse("problem", {"detail": str(exc).splitlines()[0]})
                return
            for name, data in events:
                yield sse(name, data)
            now = time.monotonic()
            if events:
                quiet_since = now
            if follower.ended or slots.ending:
                return
            if now - quiet_since >= KEEPALIVE_S:
                yield sse_comment("keepalive")
                quiet_since = now
            await anyio.sleep(POLL_S)
    finally:
        slots.open -= 1
