"""The team server's token middleware on a small FastAPI app over real SQLite and PostgreSQL accounts."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from runpoint.server.accounts import Accounts
from runpoint.server.auth import audit, authorize, principal
from runpoint.server.authn import BAD_TOKEN, NO_TOKEN, TokenAuth, install_accounts

from .accounts_fixtures import SQLITE_NOW_POSTGRES_SLOW


def _app(accounts: Accounts, cache_s: float) -> FastAPI:
    app = FastAPI()

    @app.get("/api/runs/{project}/{run_id}")
    def get_run(request: Request, project: str, run_id: str) -> dict[str, Any]:
        who = authorize(request, "read", project)
        audit(request, "run.get", project=project, run_id=run_id)
        return {"user": who.user, "scope": who.scope, "token_id": who.token_id}

    @app.post("/api/runs/{project}/{run_id}")
    def change_run(request: Request, project: str, run_id: str) -> dict[str, Any]:
        authorize(request, "write", project)
        audit(request, "run.update", project=project, run_id=run_id, detail={"notes": "x"})
        return {"ok": True}

    @app.get("/api/whoami")
    async def whoami(request: Request) -> dict[str, Any]:
        who = request.state.principal  # what the middleware put in scope["state"]
        assert principal(request) is who
        return {"user": who.user, "project": who.project, "query": request.url.query}

    @app.get("/")
    def index() -> dict[str, str]:
        return {"page": "dashboard"}

    app.state.buffer = install_accounts(app, accounts, cache_s=cache_s, audit_interval_s=3600)
    return app


@pytest.fixture
def accounts(server_db: str) -> Iterator[Accounts]:
    with Accounts(server_db) as opened:
        for name in ("ada", "bob", "root"):
            opened.add_user(name)
        yield opened


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_scopes_projects_and_revocation(accounts: Accounts) -> None:
    reader = accounts.create_token("bob", "read").text
    writer_a = accounts.create_token("ada", "write", project="A").text
    admin = accounts.create_token("root", "admin").text
    app = _app(accounts, cache_s=0)  # no cache: a revocation shows at once
    with TestClient(app) as client:
        assert client.get("/api/runs/A/r1", headers=_bearer(reader)).json()["scope"] == "read"
        refused = client.post("/api/runs/A/r1", headers=_bearer(reader))
        assert refused.status_code == 403 and "scope is read" in refused.json()["detail"]
        assert client.post("/api/runs/A/r1", headers=_bearer(writer_a)).status_code == 200
        for method in ("get", "post"):
            other = getattr(client, method)("/api/runs/B/r2", headers=_bearer(writer_a))
            assert other.status_code == 403 and "limited to project 'A'" in other.json()["detail"]
        assert client.post("/api/runs/B/r2", headers=_bearer(admin)).status_code == 200

        missing = client.get("/api/runs/A/r1")
        assert missing.status_code == 401 and missing.json() == {"detail": NO_TOKEN}
        assert missing.headers["www-authenticate"].startswith("Bearer")
        revoked = accounts.create_token("ada", "write")
        accounts.revoke_token(revoked.info.id)
        wrong = writer_a[:-1] + ("x" if writer_a[-1] != "x" else "y")
        # unknown, wrong, revoked, malformed: one answer, which names no token
        for bad in (wrong, revoked.text, "rp_000000000000_" + writer_a[-43:], "nonsense"):
            answer = client.get("/api/runs/A/r1", headers=_bearer(bad))
            assert answer.status_code == 401 and answer.json() == {"detail": BAD_TOKEN}, bad
            assert bad not in answer.text

        accounts.revoke_token(writer_a.split("_")[1])
        assert client.get("/api/runs/A/r1", headers=_bearer(writer_a)).status_code == 401
        accounts.set_disabled("bob")
        assert client.get("/api/runs/A/r1", headers=_bearer(reader)).status_code == 401

        app.state.buffer.flush()
    ada = accounts.query_audit(user="ada")
    assert [(e.action, e.project, e.run_id, e.remote) for e in ada] == [("run.update", "A", "r1", "testclient")]
    assert ada[0].token_id == writer_a.split("_")[1] and ada[0].detail == {"notes": "x"}
    assert [(e.user, e.action) for e in accounts.query_audit(run_id="r2")] == [("root", "run.update")]
    assert len(accounts.query_audit(user="bob", action="run.get")) == 1


def test_cache_browser_cookie_and_query_token(accounts: Accounts) -> None:
    created = accounts.create_token("ada", "write", project="A")
    app = _app(accounts, cache_s=3600)
    with TestClient(app, follow_redirects=False) as client:
        assert client.get("/api/whoami", headers=_bearer(created.text)).json()["user"] == "ada"
        accounts.revoke_token(created.info.id)  # the cached verification holds until it expires...
        assert client.get("/api/whoami", headers=_bearer(created.text)).status_code == 200
        auth = next(m for m in _middlewares(app) if isinstance(m, TokenAuth))
        auth.cache.clear()  # ... which it now does
        assert client.get("/api/whoami", headers=_bearer(created.text)).status_code == 401

        live = accounts.create_token("bob", "read").text
        visit = client.get("/", params={"token": live, "tab": "runs"})
        assert visit.status_code == 303 and visit.headers["location"] == "/?tab=runs"
        cookie = visit.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "runpoint_token=" in cookie
        assert client.get("/").json() == {"page": "dashboard"}  # the cookie now authenticates
        assert client.get("/api/whoami").json()["user"] == "bob"
        client.cookies.clear()
        assert client.get("/", params={"token": "rp_nonsense"}).status_code == 401
        # never from the query of an API call; and blanked in the scope the server logs from
        assert client.get("/api/whoami", params={"token": live}).status_code == 401
        seen = client.get("/api/whoami", params={"token": live, "a": "1"}, headers=_bearer(live)).json()
        assert seen["query"] == "token=%2A%2A%2A&a=1"


def _middlewares(app: FastAPI) -> Iterator[Any]:
    layer = app.middleware_stack
    while layer is not None:
        yield layer
        layer = getattr(layer, "app", None)


@SQLITE_NOW_POSTGRES_SLOW
def test_real_server_never_logs_the_token(accounts: Accounts, caplog: pytest.LogCaptureFixture) -> None:
    """Through uvicorn: the access log shows the page visited with ?token= blanked, and last use is noted."""
    import uvicorn

    created = accounts.create_token("ada", "read")
    app = _app(accounts, cache_s=5)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=True,
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        thread.start()
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
                for _ in range(200):
                    try:
                        client.get("/api/whoami")
                        break
                    except httpx.TransportError:
                        threading.Event().wait(0.02)
                visit = client.get("/", params={"token": created.text}, follow_redirects=False)
                assert visit.status_code == 303
                assert client.get("/api/runs/X/r7", headers=_bearer(created.text)).status_code == 200
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/?token=%2A%2A%2A" in logged and created.text not in logged and created.text[-43:] not in logged
    # the shutdown flushed the audit buffer
    assert [(e.action, e.run_id, e.remote) for e in accounts.query_audit(user="ada")] == [("run.get", "r7", "127.0.0.1")]
    assert accounts.token(created.info.id).last_used_at is not None


def test_plugs_into_the_dashboard_app(tmp_path: Path) -> None:
    """The existing dashboard (runpoint ui's app, without its own token) behind the accounts' tokens."""
    from runpoint.server.app import create_app
    from runpoint.store import open_store

    open_store(tmp_path).close()
    app = create_app(tmp_path, token=None, loopback_only=False, include_demo=False)
    with Accounts(tmp_path) as accounts:
        accounts.add_user("ada")
        token = accounts.create_token("ada", "read").text
        install_accounts(app, accounts)
        with TestClient(app, follow_redirects=False) as client:
            assert client.get("/api/runs").status_code == 401
            assert client.get("/api/runs", headers=_bearer(token)).status_code == 200
            assert client.get("/", params={"token": token}).status_code == 303
            page = client.get("/")
            assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"  # Guard still runs
