"""What every route of the store API shares: the store, who may touch which run, replies and errors.

- :class:`StoreService` holds the one store of the process and a cache of run id -> project
  (a run's project never changes; entries expire so that a run deleted and created again
  under the same id in another project through a *different* server process is seen within
  ``ttl`` seconds; a delete through this process forgets its entry at once).
- :func:`run_project` authorizes a request for a run: with the run's project when the run
  exists; for an unknown run only the scope is checked (there is nothing to protect, and
  the store then answers as it does for unknown runs: empty, or 404).
- :func:`reply` answers msgpack when the client accepts it (exact floats, NaN included,
  and metric arrays as bytes), strict JSON otherwise.
- :func:`store_errors` turns store exceptions into HTTP errors: bad input is a 4xx.

Example::

    @router.get("/runs/{run_id}/params")
    def params(request: Request, run_id: str) -> Response:
        run_project(request, run_id, "read")
        with store_errors():
            return reply(request, service(request).store.get_params(run_id))
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Iterator

import msgpack
from fastapi import HTTPException, Request
from fastapi.responses import Response

from ..errors import (
    InvalidArgumentError,
    InvalidValueError,
    RunExistsError,
    RunNotFoundError,
    StoreError,
)
from ..store.base import Store
from ..store.wire import MSGPACK
from .auth import Scope, authorize, principal
from .context import StrictJSONResponse


class StoreService:
    """The store a server process serves, and its cache of run id -> project."""

    def __init__(self, store: Store, *, cache_size: int = 65_536, ttl: float = 300.0) -> None:
        self.store = store
        self._cache: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._size = cache_size
        self._ttl = ttl
        self._lock = threading.Lock()

    def project_of(self, run_id: str) -> str | None:
        """The project of run ``run_id``; None when there is no such run."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(run_id)
            if hit is not None and hit[1] > now:
                self._cache.move_to_end(run_id)
                return hit[0]
        try:
            project = self.store.get_run(run_id).project
        except RunNotFoundError:
            return None
        self.remember(run_id, project)
        return project

    def remember(self, run_id: str, project: str) -> None:
        with self._lock:
            self._cache[run_id] = (project, time.monotonic() + self._ttl)
            self._cache.move_to_end(run_id)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._cache.pop(run_id, None)


def service(request: Request) -> StoreService:
    """FastAPI dependency: the app's :class:`StoreService`."""
    return request.app.state.store_service


def run_project(request: Request, run_id: str, scope: Scope) -> str | None:
    """Authorize ``scope`` on run ``run_id`` (403 if not allowed); its project, or None if there is no such run."""
    project = service(request).project_of(run_id)
    authorize(request, scope, project if project is not None else principal(request).project)
    return project


def existing_run_project(request: Request, run_id: str, scope: Scope) -> str:
    """As :func:`run_project`, and 404 when the run does not exist."""
    project = run_project(request, run_id, scope)
    if project is None:
        raise HTTPException(404, str(RunNotFoundError(run_id)))
    return project


def wants_msgpack(request: Request) -> bool:
    return MSGPACK in request.headers.get("accept", "")


def reply(request: Request, value: Any, status: int = 200) -> Response:
    """``value`` as msgpack when the client accepts it, else as JSON (NaN as "NaN")."""
    if wants_msgpack(request):
        return Response(msgpack.packb(value, use_bin_type=True), status_code=status, media_type=MSGPACK)
    return StrictJSONResponse(value, status_code=status)


def _database_refused(exc: StoreError) -> int | None:
    """400 or 409 when the database refused the client's values (SQLSTATE class 22 or 23), else None."""
    cause = exc.__cause__
    if cause is None:
        return None
    names = {kind.__name__ for kind in type(cause).__mro__}
    state = str(getattr(cause, "sqlstate", "") or "")
    if state.startswith("22") or "DataError" in names:
        return 400
    if state.startswith("23") or "IntegrityError" in names:
        return 409
    return None


@contextmanager
def store_errors() -> Iterator[None]:
    """Store exceptions as HTTP errors: 400 bad input, 404 no such run, 409 exists or conflicts."""
    try:
        yield
    except RunExistsError as exc:
        raise HTTPException(409, str(exc)) from None
    except RunNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None
    except (InvalidArgumentError, InvalidValueError) as exc:
        raise HTTPException(400, str(exc)) from None
    except StoreError as exc:
        status = _database_refused(exc)
        if status is None:
            raise
        raise HTTPException(status, f"the database refused the request: {str(exc).splitlines()[0][:300]}") from None
