"""``runpoint ui``: serve the dashboard for a root and open it in the browser."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import quote

import typer
from rich.markup import escape

from ._output import RootOption, console, err_console, fail, friendly_errors

DEFAULT_PORT = 6300
PORT_TRIES = 20  # the default port is busy: try the next ones


def _bind(host: str, port: int, explicit: bool) -> socket.socket:
    """A listening socket on ``host:port``; when ``port`` was not given, the next free one after it."""
    last_error: OSError | None = None
    for candidate in ([port] if explicit else range(port, port + PORT_TRIES)):
        try:
            family, kind, proto, _, address = socket.getaddrinfo(host, candidate, type=socket.SOCK_STREAM)[0]
        except socket.gaierror as exc:
            raise fail(f"--host {host}: {exc.strerror}", 2) from None
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            last_error = exc
            continue
        sock.listen(128)
        sock.set_inheritable(False)
        return sock
    reason = last_error.strerror if last_error else "unavailable"
    tried = f"port {port}" if explicit else f"ports {port}-{port + PORT_TRIES - 1}"
    raise fail(f"cannot listen on {host} {tried}: {reason} (pick another with --port, or --port 0 for any free one)")


def _access_token(token: str | None, no_token: bool, host: str, loopback: bool) -> str | None:
    """The token requests must carry: ``--token``, a random one, or None with ``--no-token`` (loopback only)."""
    if token is not None and not token.strip():
        raise fail("--token must not be empty", 2)
    if no_token and token is not None:
        raise fail("--no-token and --token (or $RUNPOINT_UI_TOKEN) exclude each other", 2)
    if no_token and not loopback:
        raise fail(f"--no-token is refused with --host {host}: beyond loopback every request needs the token", 2)
    if not no_token and token is None:
        # on loopback too: any user of a shared machine can reach 127.0.0.1
        token = secrets.token_urlsafe(24)
    return token


def _dashboard_url(host: str, port: int, token: str | None) -> str:
    """The URL to open: a wildcard host shown as 127.0.0.1, IPv6 in brackets, the token in the query."""
    shown_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host
    shown_host = f"[{shown_host}]" if ":" in shown_host else shown_host
    return f"http://{shown_host}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")


def _refuse_a_server(root: object) -> None:
    from ..sync.spool import is_server_url

    location = os.fspath(root) if root is not None else os.environ.get("RUNPOINT_ROOT", "")  # type: ignore[call-overload]
    if is_server_url(location):
        raise fail(f"{location} is a team server: it serves its own dashboard; open {location.rstrip('/')}/ "
                   "(with ?token=... once) in a browser", 2)


def ui(  # long: one typer option per line, each with its help
    root: RootOption = None,
    port: Annotated[Optional[int], typer.Option("--port", min=0, max=65535, help=f"Port (default {DEFAULT_PORT}, or the next free one; 0: any free port).", show_default=False)] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (anything but loopback always requires the token).")] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Do not open a browser.")] = False,
    token: Annotated[Optional[str], typer.Option("--token", envvar="RUNPOINT_UI_TOKEN", help="The token every request must carry (default: a random one, printed in the URL).", show_default=False)] = None,
    no_token: Annotated[bool, typer.Option("--no-token", help="Serve without a token, so every user of this machine can use the dashboard (loopback only).")] = False,
    entry_points: Annotated[Optional[list[Path]], typer.Option("--entry-points", help="YAML file registering commands the Launch page can start (repeatable).", show_default=False)] = None,
    create: Annotated[bool, typer.Option("--create", help="Start with an empty root if there is none.")] = False,
    prometheus_keys: Annotated[Optional[str], typer.Option("--prometheus-keys", envvar="RUNPOINT_PROMETHEUS_KEYS", help="Metrics whose last value /metrics exports for each running run: comma-separated patterns such as 'loss,val/*' (default: '*loss*,*acc*'; at most 20 keys a run, the first pattern's first).", show_default=False)] = None,
) -> None:
    """Open the dashboard: runs table, live charts, compare, launch and stop runs."""
    try:
        import uvicorn

        from ..server.app import create_app
        from ..server.entry_points import load_entry_points
        from ..server.prometheus_snapshot import KEYS_ENV
        from ..server.security import is_loopback
    except ImportError as exc:
        raise fail(f"the dashboard needs the ui extra ({exc.name} is missing): pip install 'runpoint[ui]'") from None
    from ..artifacts.paths import resolve_root
    from ..store import open_store

    _refuse_a_server(root)
    if create and "://" not in str(root or ""):
        open_store(resolve_root(root)).close()
    loopback = is_loopback(host)
    token = _access_token(token, no_token, host, loopback)
    if prometheus_keys is not None:
        os.environ[KEYS_ENV] = prometheus_keys  # read by /metrics (runpoint.server.prometheus)
    registered = [entry for path in entry_points or [] for entry in load_entry_points(path)]
    from ..errors import StoreError

    try:
        app = create_app(root, token=token, loopback_only=loopback, entry_points=registered)
    except StoreError as exc:
        if "no runpoint store" not in str(exc):
            raise
        raise fail(f"{exc}; `runpoint ui --create` starts with an empty root") from None
    sock = _bind(host, DEFAULT_PORT if port is None else port, explicit=port is not None)
    url = _dashboard_url(host, sock.getsockname()[1], token)
    dashboard = app.state.dashboard
    console.print(f"runpoint dashboard for [bold]{escape(str(dashboard.root))}[/] at [bold]{escape(url)}[/]  (Ctrl-C stops it)",
                  highlight=False, soft_wrap=True)
    if not loopback:
        err_console.print(f"listening on {host}: every request needs the token", markup=False)
    if not no_browser:
        threading.Timer(0.5, webbrowser.open, args=(url,)).start()
    config = uvicorn.Config(app, log_level=os.environ.get("RUNPOINT_UI_LOG_LEVEL", "warning"),
                            timeout_graceful_shutdown=3, access_log=False)
    server = uvicorn.Server(config)
    from ..server.api_live import end_streams_on_exit

    end_streams_on_exit(server, app)  # Ctrl-C does not wait for the live streams of open pages
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        running = [launch for launch in dashboard.launcher.list() if launch.state == "running"]
        if running:
            err_console.print(f"{len(running)} launched process(es) keep running: "
                              + ", ".join(f"pid {launch.pid}" for launch in running), markup=False)


def register(app: typer.Typer) -> None:
    app.command("ui")(friendly_errors(ui))
