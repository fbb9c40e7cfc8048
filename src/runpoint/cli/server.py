"""``runpoint server``: serve a team's runs (dashboard and store API) from one shared database.

    runpoint server --db postgresql://runpoint@db/runpoint --host 0.0.0.0 --port 6400 --workers 4
    runpoint server --db sqlite:///srv/runpoint/runpoint.db --artifacts /srv/runpoint/files

It is a command group: subcommands (``runpoint server token ...``) register on :data:`server_app`;
run without one, it serves. The database URL is passed to the uvicorn workers through the
environment (:mod:`runpoint.server.team` reads it), never printed with its password.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._output import console, err_console, fail, friendly_errors

DEFAULT_PORT = 6400

server_app = typer.Typer(
    name="server",
    help="Serve a team's runs (dashboard and store API) from one database.",
    invoke_without_command=True,
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _check_tls(certfile: Path | None, keyfile: Path | None) -> None:
    if (certfile is None) != (keyfile is None):
        raise fail("--ssl-certfile and --ssl-keyfile go together", 2)
    for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not path.is_file():
            raise fail(f"{option} {path}: no such file", 2)


@friendly_errors
def serve(  # long: one option after another, each handed to the uvicorn workers through the environment
    ctx: typer.Context,
    db: Annotated[Optional[str], typer.Option("--db", envvar="RUNPOINT_SERVER_DB", help="The database: postgresql://user@host/db or sqlite:///path.", show_default=False)] = None,
    artifacts: Annotated[Optional[str], typer.Option("--artifacts", envvar="RUNPOINT_SERVER_ARTIFACTS", help="Where run files live: s3://bucket/prefix or a directory.", show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = DEFAULT_PORT,
    workers: Annotated[int, typer.Option("--workers", min=1, max=256, help="Server processes (each opens its own connections).")] = 1,
    threads: Annotated[int, typer.Option("--threads", min=1, max=1024, help="Threads per process; each holds a database connection (keep threads x workers under PostgreSQL's max_connections).")] = 16,
    ssl_certfile: Annotated[Optional[Path], typer.Option("--ssl-certfile", help="TLS certificate (PEM).", show_default=False)] = None,
    ssl_keyfile: Annotated[Optional[Path], typer.Option("--ssl-keyfile", help="TLS private key (PEM).", show_default=False)] = None,
    no_presign: Annotated[bool, typer.Option("--no-presign", help="Send every upload through the server (no presigned URLs to the object store).")] = False,
    no_auth: Annotated[bool, typer.Option("--no-auth", help="Serve without tokens (loopback only: for trying it out).")] = False,
    prometheus_keys: Annotated[Optional[str], typer.Option("--prometheus-keys", envvar="RUNPOINT_PROMETHEUS_KEYS", help="Metrics whose last value /metrics exports for each running run: comma-separated patterns such as 'loss,val/*' (default: '*loss*,*acc*'; at most 20 keys a run, the first pattern's first).", show_default=False)] = None,
) -> None:
    """Serve the dashboard and the store API (runpoint.remote.HttpStore's server) from one database."""
    if ctx.invoked_subcommand is not None:
        return
    if not db:
        raise fail("--db is required (postgresql://user@host/db or sqlite:///path; or $RUNPOINT_SERVER_DB)", 2)
    _check_tls(ssl_certfile, ssl_keyfile)
    try:
        import uvicorn

        from ..server import team
        from ..server.prometheus_snapshot import KEYS_ENV
    except ImportError as exc:
        raise fail(f"the server needs the ui extra ({exc.name} is missing): pip install 'runpoint[ui,server]'") from None
    from .._util.uri import without_credentials
    from ..server.security import is_loopback

    if no_auth and not is_loopback(host):
        raise fail(f"--no-auth serves anyone who can reach the server: only on loopback, not --host {host}", 2)
    team.create_server_app(db, artifacts).state.dashboard.store.close()  # migrate, and fail here, once
    if no_presign:
        os.environ[team.NO_PRESIGN_ENV] = "1"
    if no_auth:
        os.environ[team.NO_AUTH_ENV] = "1"
    else:
        from ..server.accounts import Accounts

        with Accounts(db) as accounts:
            has_tokens = bool(accounts.tokens(include_revoked=False))
        if not has_tokens:
            err_console.print("no tokens yet: every request will be refused until you create one, e.g.\n"
                              "  runpoint server token create --user you --scope admin", markup=False)
    os.environ[team.DB_ENV] = db
    os.environ[team.THREADS_ENV] = str(threads)
    if prometheus_keys is not None:
        os.environ[KEYS_ENV] = prometheus_keys  # each worker's /metrics reads it
    if artifacts:
        os.environ[team.ARTIFACTS_ENV] = artifacts
    scheme = "https" if ssl_certfile else "http"
    console.print(f"runpoint server for {without_credentials(db)} at {scheme}://{host}:{port}/  (Ctrl-C stops it)",
                  markup=False, highlight=False, soft_wrap=True)
    if not ssl_certfile and host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print("serving plain HTTP beyond loopback: put it behind TLS (--ssl-certfile) or a proxy",
                          markup=False)
    uvicorn.run(
        "runpoint.server.team:app_from_env", factory=True, host=host, port=port, workers=workers,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None, ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        log_level=os.environ.get("RUNPOINT_SERVER_LOG_LEVEL", "warning"), access_log=False,
        timeout_graceful_shutdown=5, proxy_headers=True,
    )


server_app.callback()(serve)


def register(app: typer.Typer) -> None:
    from . import server_admin

    server_admin.register(server_app)  # runpoint server token|user|audit
    app.add_typer(server_app)
