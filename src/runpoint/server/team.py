"""The team server's application: the dashboard and the store API over one shared database.

``runpoint server`` serves this app: the dashboard (UI and its JSON API) over the store at
``db`` (``postgresql://...`` or ``sqlite:///path``), plus the store API under
``/api/store`` (:mod:`runpoint.server.store_api`) through which training clients
(``runpoint.remote.HttpStore``) record. The app is stateless beyond the database, so
several processes (``--workers``, or several hosts) can serve one database. Migrations run
when it opens the store. The dashboard's Launch page launches nothing here (no entry points).

Authentication is not built here: ``accounts`` is the hook. It is called with the app and
installs what authenticates requests (ASGI middleware putting a
:class:`~runpoint.server.auth.Principal` on ``request.state.principal``, and an
``app.state.audit_sink``); with it, the local UI's shared token is off. Without ``accounts``,
``token`` (when given) is one shared token every request must carry, as in ``runpoint ui``.

Example::

    app = create_server_app("postgresql://runpoint@db/runpoint", accounts=install_accounts)
    uvicorn.run(app, host="0.0.0.0", port=6400)
"""

from __future__ import annotations

import os
from typing import Any, Callable

from fastapi import FastAPI

from .._util.uri import without_credentials
from ..errors import InvalidArgumentError
from ..store import open_store
from .store_api import add_store_api

DB_ENV = "RUNPOINT_SERVER_DB"
ARTIFACTS_ENV = "RUNPOINT_SERVER_ARTIFACTS"
LOOPBACK_ENV = "RUNPOINT_SERVER_LOOPBACK_ONLY"
THREADS_ENV = "RUNPOINT_SERVER_THREADS"
NO_AUTH_ENV = "RUNPOINT_SERVER_NO_AUTH"
NO_PRESIGN_ENV = "RUNPOINT_SERVER_NO_PRESIGN"
DEFAULT_THREADS = 16

AccountsHook = Callable[[FastAPI], None]


def _store_url(db: str) -> str:
    if "://" not in db:
        raise InvalidArgumentError("db", f"{db!r} is not a URL: use postgresql://user@host/db or sqlite:///path")
    return db


def create_server_app(
    db: str,
    artifacts: str | None = None,
    *,
    accounts: AccountsHook | None = None,
    token: str | None = None,
    loopback_only: bool = False,
    threads: int = DEFAULT_THREADS,
) -> FastAPI:
    """The team server's app over the store at ``db``; ``artifacts`` is where run files live (files API).

    Args:
        accounts: installs authentication (middleware, audit sink) on the app; turns the shared token off.
        token: without ``accounts``: the one token every request must carry (None: none).
        loopback_only: answer only requests addressed to localhost.
        threads: worker threads of the process for the store's calls; each holds one database
            connection, so ``threads`` x processes must stay under PostgreSQL's ``max_connections``.
    """
    from .app import create_app

    url = _store_url(db)
    open_store(url, create=True).close()  # create the schema or migrate it, once, before serving
    app = create_app(url, token=None if accounts is not None else token, loopback_only=loopback_only,
                     include_demo=False, tensorboard=False)  # the runs' files are the clients': see api_tensorboard
    app.title = "runpoint server"
    app.state.store_url = without_credentials(url)
    app.state.signals_processes = False  # runs record their own host and pid: never trust them with a signal
    app.state.artifacts_url = without_credentials(artifacts) if artifacts else None
    add_store_api(app, app.state.dashboard.store)
    if artifacts:
        _add_files(app, artifacts)
    app.add_middleware(_ThreadLimit, threads=threads)
    if accounts is not None:
        accounts(app)
    return app


def _add_files(app: FastAPI, artifacts: str) -> None:
    """The files API over the object store at ``artifacts``; the dashboard reads runs' files from it too."""
    from dataclasses import replace

    from ..errors import RunNotFoundError
    from .files_api import files_router
    from .object_store import ObjectStore

    files = ObjectStore.open(artifacts, presign=os.environ.get(NO_PRESIGN_ENV) != "1")
    service = app.state.store_service

    def project_of(run_id: str) -> str:
        project = service.project_of(run_id)
        if project is None:
            raise RunNotFoundError(run_id, app.state.store_url)
        return str(project)

    app.state.object_store = files
    app.state.dashboard = replace(app.state.dashboard, files=None, object_store=files)
    app.include_router(files_router(files, project_of))


class _ThreadLimit:
    """ASGI middleware: at startup, cap the threads that run sync routes (anyio's default is 40)."""

    def __init__(self, app: Any, *, threads: int) -> None:
        self.app = app
        self.threads = max(1, threads)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            import anyio.to_thread

            anyio.to_thread.current_default_thread_limiter().total_tokens = self.threads
        await self.app(scope, receive, send)


def app_from_env() -> FastAPI:
    """The app ``runpoint server`` starts in each uvicorn worker (a factory: config from the environment)."""
    db = os.environ.get(DB_ENV)
    if not db:
        raise InvalidArgumentError("db", f"${DB_ENV} is not set (runpoint server sets it for its workers)")
    no_auth = os.environ.get(NO_AUTH_ENV) == "1"
    return create_server_app(
        db, os.environ.get(ARTIFACTS_ENV) or None, accounts=None if no_auth else _accounts_of(db),
        # without tokens, only requests addressed to localhost: a page that rebinds its DNS name cannot read it
        loopback_only=no_auth or os.environ.get(LOOPBACK_ENV) == "1",
        threads=int(os.environ.get(THREADS_ENV) or DEFAULT_THREADS),
    )


def _accounts_of(db: str) -> AccountsHook:
    """Tokens and the audit log, kept in ``db`` beside the runs (runpoint.server.accounts)."""
    from .accounts import Accounts
    from .authn import install_accounts

    accounts = Accounts(db)

    def install(app: FastAPI) -> None:
        install_accounts(app, accounts)

    return install
