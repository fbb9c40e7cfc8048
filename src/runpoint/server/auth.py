"""Who is asking, and may they: the principal of a request and the project-level check.

Every route of the store API calls :func:`authorize` with the scope it needs and the
project it touches, and :func:`audit` after a change (or a read of a run). Without
accounts (the local dashboard, ``runpoint ui``) the principal is the local user with every
scope; the team server (``runpoint server``) puts the principal its token names on
``request.state.principal`` before any route runs.

Scopes are ordered: ``read`` < ``write`` < ``admin``; a token limited to a project
reaches only that project's runs.

Example::

    def handler(request: Request, run_id: str):
        run = store.get_run(run_id)
        authorize(request, "write", run.project)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

from fastapi import HTTPException, Request

Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


@dataclass(frozen=True)
class Principal:
    """The user behind a request: their token's scope and project (None: every project)."""

    user: str
    scope: Scope
    project: str | None = None
    token_id: str | None = None

    def allows(self, needed: Scope, project: str | None) -> bool:
        if SCOPES.index(self.scope) < SCOPES.index(needed):
            return False
        return self.project is None or project == self.project


LOCAL = Principal(user="local", scope="admin")

# Set by the team server: called as audit_sink(principal, action, project, run_id, target, detail).
AuditSink = Callable[[Principal, str, "str | None", "str | None", "str | None", "dict[str, Any] | None"], None]


def principal(request: Request) -> Principal:
    """The request's principal: the team server's authenticated user, or the local user."""
    return getattr(request.state, "principal", None) or LOCAL


def authorize(request: Request, needed: Scope, project: str | None) -> Principal:
    """The principal, or HTTP 403 when their token does not reach ``project`` with ``needed``."""
    who = principal(request)
    if who.allows(needed, project):
        return who
    if SCOPES.index(who.scope) < SCOPES.index(needed):
        raise HTTPException(403, f"this token's scope is {who.scope}; this needs {needed}")
    raise HTTPException(403, f"this token is limited to project {who.project!r}; the run is in another project")


def visible_project(request: Request, project: str | None) -> str | None:
    """The project a listing may cover: the token's own project, or ``project`` when it may see every one."""
    who = principal(request)
    if who.project is None:
        return project
    if project is not None and project != who.project:
        raise HTTPException(403, f"this token is limited to project {who.project!r}")
    return who.project


def audit(
    request: Request,
    action: str,
    *,
    project: str | None = None,
    run_id: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record that the request's principal did ``action``; a no-op where the app keeps no audit log."""
    sink: AuditSink | None = getattr(request.app.state, "audit_sink", None)
    if sink is not None:
        sink(principal(request), action, project, run_id, target, detail)
