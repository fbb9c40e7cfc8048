"""Who may reach which run through the dashboard's JSON API: one dependency for a whole router.

The store API and the files API check every request themselves (:mod:`runpoint.server.auth`);
the dashboard's routers get the same project limits from :data:`RUN_ACCESS`, declared once
on the router::

    router = APIRouter(prefix="/api/runs/{run_id}/alerts", dependencies=[RUN_ACCESS])

For every route of such a router it checks the token's scope (``read`` for GET and HEAD,
``write`` for anything else) and, when the path names a run (a ``run_id`` or ``ref``
parameter), that the run is in a project the token reaches:

- A token for every project (and ``runpoint ui``'s local user, who has no token) is never
  slowed down: nothing is looked up.
- For a token limited to one project, a full run id is looked up in the team server's
  run -> project cache: another project's run is refused with 403 "limited to project",
  as the store API answers (its ids are not secret there either). Anything else (an id
  prefix, a name, ``latest``) is resolved only among the token's own project's runs, so a
  guessable name never tells that a run of another project exists: no match is a 404. The
  path parameter is then replaced by the run's full id, so that the handler's own lookup
  cannot land on a run of another project.

Listings and run ids given in a query or a body are not the path: their handlers use
:func:`~runpoint.server.auth.visible_project` and :func:`visible_run`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, Request

from .. import query
from ..errors import RunNotFoundError
from ..store.base import RunRecord, Store
from .auth import Scope, authorize, principal
from .context import dashboard

if TYPE_CHECKING:
    from .store_api_service import StoreService

RUN_PARAMS = ("run_id", "ref")  # the path parameters that name a run
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def needed_scope(request: Request) -> Scope:
    """``read`` for a request that only reads (GET, HEAD), ``write`` for any other."""
    return "read" if request.method in READ_METHODS else "write"


def run_access(request: Request) -> None:
    """FastAPI dependency: the request's scope, and the project of the run its path names (see the module)."""
    needed = needed_scope(request)
    who = authorize(request, needed, principal(request).project)  # the scope; its own project always passes
    if who.project is None:
        return  # every project: nothing to look up
    params: dict[str, Any] = request.path_params  # the scope's own dict: what the handler receives
    for name in RUN_PARAMS:
        ref = params.get(name)
        if isinstance(ref, str):
            params[name] = _visible_run_id(request, ref, needed)


RUN_ACCESS: Any = Depends(run_access)


def visible_run(request: Request, store: Store, ref: str) -> RunRecord:
    """The run ``ref`` names (id, prefix, name, ``latest``) if the request's token reaches it; 403 or 404 if not.

    For run ids that come in a query or a body, e.g. ``/api/compare?runs=a&runs=b``.
    """
    if principal(request).project is not None:
        ref = _visible_run_id(request, ref, needed_scope(request))
    else:
        authorize(request, needed_scope(request), None)
    return query.resolve_run(store, ref)


def _visible_run_id(request: Request, ref: str, needed: Scope) -> str:
    """The full id of the run ``ref`` names, for a token limited to one project."""
    project = _project_of(request, ref)
    if project is not None:
        authorize(request, needed, project)  # 403 for another project's run, as the store API
        return ref
    store = dashboard(request).store
    return query.resolve_run(store, ref, project=principal(request).project).id


def _project_of(request: Request, run_id: str) -> str | None:
    """The project of the run whose full id is ``run_id`` (cached on the team server); None for no such run."""
    service: StoreService | None = getattr(request.app.state, "store_service", None)
    if service is not None:
        return service.project_of(run_id)
    try:
        return dashboard(request).store.get_run(run_id).project
    except RunNotFoundError:
        return None
