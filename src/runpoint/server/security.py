"""What keeps the dashboard from serving the wrong person or the wrong file.

- **Token.** When a token is set (by default; `runpoint ui --no-token` is for loopback only), every
  request must carry it: ``Authorization: Bearer <token>``, the ``runpoint_token`` cookie,
  or ``?token=<token>`` on a page URL, which sets that cookie (HttpOnly, SameSite=Strict)
  and redirects to the URL without it, as Jupyter does. Compared in constant time.
- **Host check.** On loopback, requests must name a loopback host: a web page that
  rebinds its own DNS name to 127.0.0.1 cannot read the API.
- **Origin check.** A request that changes something (POST, DELETE ...) from a browser
  must come from the dashboard's own origin, and JSON bodies must say so in their
  content type, so another site cannot launch or stop runs (CSRF).
- **Paths.** :func:`resolve_inside` refuses absolute paths, ``..`` and symlinks that lead
  out of a run's directory.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import re
from typing import Any, Awaitable, Callable
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from ..artifacts.paths import (
    resolve_inside as resolve_inside,  # re-exported: the path check the server uses
)

TOKEN_COOKIE = "runpoint_token"
TOKEN_ENV = "RUNPOINT_UI_TOKEN"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether binding to ``host`` keeps the server on this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False




def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


# A Host header is a name or an address, then an optional port: nothing else (no user@, no path).
_HOST_HEADER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::[0-9]{1,5})?")
# What a redirect's path may keep as it is; anything else (a backslash, which browsers read as
# '/', spaces, controls) is percent-encoded so that the Location stays a path of this server.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"


def _host_name(host_header: str) -> str | None:
    """The host part of a Host header; None when the header is not ``name[:port]``."""
    match = _HOST_HEADER.fullmatch(host_header)
    return match.group(1) if match else None


def _local_location(path: str, query: dict[str, str]) -> str:
    """A Location header that can only name a path of this server (never ``//host`` or ``/\\host``)."""
    return "/" + quote(path.lstrip("/\\"), safe=_PATH_SAFE) + (f"?{urlencode(query)}" if query else "")


def _cookie(headers: dict[str, str], name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _reply(send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] = ()) -> None:  # type: ignore[assignment]
    payload = json.dumps(body).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *extra],
    })
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """ASGI middleware: token, host and origin checks, and security headers on every response."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    def _token_ok(self, candidate: str | None) -> bool:
        return candidate is not None and self.token is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host = _host_name(headers.get("host", ""))
        if self.loopback_only and (host is None or not is_loopback(host)):
            await _reply(send, 403, {"detail": "this dashboard answers only to localhost / 127.0.0.1"})
            return
        method = scope["method"]
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != headers.get("host"):
                await _reply(send, 403, {"detail": f"cross-origin request from {origin} refused"})
                return
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            bearer = headers.get("authorization", "")
            supplied = bearer[7:] if bearer.lower().startswith("bearer ") else None
            if self._token_ok(query.get("token")) and method == "GET" and not scope["path"].startswith("/api/"):
                query.pop("token")
                location = _local_location(scope["path"], query)
                cookie = f"{TOKEN_COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                await send({"type": "http.response.start", "status": 303,
                            "headers": [(b"location", location.encode()), (b"set-cookie", cookie.encode()),
                                        (b"content-length", b"0")]})
                await send({"type": "http.response.body", "body": b""})
                return
            # ``?token=`` only on pages (above: it becomes the cookie); on the API it would sit in logs and history
            if not (self._token_ok(supplied) or self._token_ok(_cookie(headers, TOKEN_COOKIE))):
                await _reply(send, 401, {"detail": "a token is required: open the URL `runpoint ui` printed, "
                                                   "or send 'Authorization: Bearer <token>'"},
                             [(b"www-authenticate", b"Bearer")])
                return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
