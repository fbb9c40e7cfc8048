"""Who is calling the team server: the API-token middleware.

Every HTTP request must carry a token of :class:`~runpoint.server.accounts.Accounts`:
``Authorization: Bearer rp_...`` (the client, ``$RUNPOINT_TOKEN``), or the ``runpoint_token``
cookie that visiting ``/?token=rp_...`` sets for the browser dashboard (HttpOnly,
SameSite=Strict, Secure over https; then a redirect to the URL without the token, as
:mod:`runpoint.server.security` does for ``runpoint ui``). A token in the query is accepted
only there, never on ``/api/...``. The middleware then puts the token's
:class:`~runpoint.server.auth.Principal` at ``scope["state"]["principal"]``, which is what
``request.state.principal`` reads, and the caller's address in
:data:`~runpoint.server.audit_log.REMOTE_ADDRESS` for the audit log.

No token, or one that is not valid, is a 401 whose message never says which: an unknown
id, a wrong secret, a revoked or expired token and a disabled user all read the same. The
token never appears in a response or a log line; the query's ``token=`` is even blanked in
the ASGI scope so that the server's access log does not print it.

Verified tokens are cached for ``cache_s`` seconds (5 by default) in the process, so a
revocation takes effect within that time and a burst of requests costs one database read
per token; the read runs in a worker thread, off the event loop.

Example::

    app = create_app(...)
    install_accounts(app, Accounts("postgresql://db.lan/runpoint"))
"""

from __future__ import annotations

import atexit
import hashlib
import time
from typing import Any, Iterable

import anyio.to_thread

from ..errors import StoreError
from .accounts import Accounts
from .audit_log import REMOTE_ADDRESS, AuditBuffer
from .auth import Principal
from .security import (
    TOKEN_COOKIE,
    ASGIApp,
    Receive,
    Scope,
    Send,
    _cookie,
    _headers,
    _local_location,
    _reply,
)

CACHE_S = 5.0
MAX_CACHED = 10_000

NO_TOKEN = ("this server needs an API token: send 'Authorization: Bearer rp_...' (the client reads $RUNPOINT_TOKEN; "
            "an admin creates tokens with `runpoint server token create`)")
BAD_TOKEN = "this API token is not valid (mistyped, revoked or expired, or its user is disabled)"
_CHALLENGE = [(b"www-authenticate", b'Bearer realm="runpoint"')]


class TokenCache:
    """Principals of recently verified tokens, by the token's SHA-256, for ``ttl_s`` seconds."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[bytes, tuple[Principal, float]] = {}

    @staticmethod
    def key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()  # the token itself is not kept

    def get(self, key: bytes) -> Principal | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if time.monotonic() >= entry[1]:
            self._entries.pop(key, None)
            return None
        return entry[0]

    def put(self, key: bytes, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        if len(self._entries) >= MAX_CACHED:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
            if len(self._entries) >= MAX_CACHED:
                self._entries.clear()
        self._entries[key] = (principal, time.monotonic() + self.ttl_s)

    def clear(self) -> None:
        self._entries.clear()


class TokenAuth:
    """ASGI middleware: authenticate every request by its API token (see the module docstring).

    ``public_paths``: exact paths served without a token (a load balancer's health check).
    ``on_shutdown``: called when the server shuts down (the audit buffer's flush).
    """

    def __init__(self, app: ASGIApp, *, accounts: Accounts, cache_s: float = CACHE_S,
                 public_paths: Iterable[str] = (), on_shutdown: Any = None) -> None:
        self.app = app
        self.accounts = accounts
        self.cache = TokenCache(cache_s)
        self.public_paths = frozenset(public_paths)
        self.on_shutdown = on_shutdown

    async def _principal(self, token: str) -> Principal | None:
        key = self.cache.key(token)
        found = self.cache.get(key)
        if found is None:
            found = await anyio.to_thread.run_sync(self.accounts.verify, token)
            if found is not None:
                self.cache.put(key, found)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query_token = _take_query_token(scope)
        if scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        bearer = headers.get("authorization", "")
        supplied = bearer[7:].strip() if bearer[:7].lower() == "bearer " else None
        via_query = query_token is not None and scope["type"] == "http" and scope["method"] == "GET" \
            and not scope["path"].startswith("/api/")
        supplied = query_token if via_query else supplied or _cookie(headers, TOKEN_COOKIE)
        if not supplied:
            await self._refuse(scope, send, NO_TOKEN)
            return
        try:
            who = await self._principal(supplied)
        except StoreError:
            await _reply(send, 503, {"detail": "the accounts database is unavailable; try again shortly"})
            return
        if who is None:
            await self._refuse(scope, send, BAD_TOKEN)
            return
        if via_query:
            await _set_cookie_and_redirect(scope, send, supplied)
            return
        scope.setdefault("state", {})["principal"] = who
        client = scope.get("client")
        reset = REMOTE_ADDRESS.set(client[0] if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            REMOTE_ADDRESS.reset(reset)

    async def _refuse(self, scope: Scope, send: Send, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "authentication required"})
            return
        await _reply(send, 401, {"detail": message}, _CHALLENGE)

    def _lifespan_send(self, send: Send) -> Send:
        async def lifespan_send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.shutdown.complete" and self.on_shutdown is not None:
                await anyio.to_thread.run_sync(self.on_shutdown)
            await send(message)

        return lifespan_send


def _take_query_token(scope: Scope) -> str | None:
    """The ``token=`` of the query string, which is blanked in ``scope`` (the access log prints the query)."""
    raw: bytes = scope.get("query_string", b"")
    if b"token=" not in raw:
        return None
    from urllib.parse import parse_qsl, urlencode

    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    token = next((value for key, value in pairs if key == "token"), None)
    if token is not None:
        # in place: the server holds this very dict and logs from it
        scope["query_string"] = urlencode([(k, "***" if k == "token" else v) for k, v in pairs]).encode("latin-1")
    return token


async def _set_cookie_and_redirect(scope: Scope, send: Send, token: str) -> None:
    query = {k: v for k, v in _query_pairs(scope) if k != "token"}
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{TOKEN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", _local_location(scope["path"], query).encode()),
                            (b"set-cookie", cookie.encode()), (b"content-length", b"0"),
                            (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


def _query_pairs(scope: Scope) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)


def install_accounts(app: Any, accounts: Accounts, *, cache_s: float = CACHE_S, audit_interval_s: float = 1.0,
                     public_paths: Iterable[str] = ()) -> AuditBuffer:
    """Make ``app`` (a FastAPI/Starlette app) require tokens of ``accounts`` and write its audit log there.

    Sets ``app.state.accounts`` and ``app.state.audit_sink``; returns the audit buffer
    (flushed every ``audit_interval_s``, at the server's shutdown and at exit).
    """
    buffer = AuditBuffer(accounts.record_audit, interval_s=audit_interval_s)
    app.state.accounts = accounts
    app.state.audit_sink = buffer.sink
    app.add_middleware(TokenAuth, accounts=accounts, cache_s=cache_s, public_paths=tuple(public_paths),
                       on_shutdown=buffer.close)
    atexit.register(buffer.close)
    return buffer
