"""The HTTP session of a runpoint server's clients: base URL, token, retries, errors as runpoint exceptions.

One :class:`HttpSession` per server: an ``httpx.Client`` with keep-alive and timeouts, the
token (the argument, else ``$RUNPOINT_TOKEN``) sent as ``Authorization: Bearer``, and never
written into a message or a ``repr``. Calls that are safe to repeat are retried with
exponential backoff on connection errors and on 502, 503 and 504; every call is retried when
the connection could not even be opened (nothing was sent). The server's ``{"detail": ...}``
errors come back as runpoint exceptions: 400/413/415/422 :class:`InvalidArgumentError`,
401/403 :class:`AccessDeniedError`, 404 :class:`RunNotFoundError`, 409
:class:`RunExistsError` (or :class:`RunpointError` for other conflicts), anything else
:class:`StoreError`. A forked child opens a connection pool of its own.

Example::

    session = HttpSession("https://runpoint.example.com", token="rp_...")
    runs = session.call("POST", "/api/store/runs/search", json={"project": "digits"})
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import httpx
import msgpack

from .._util.forksafe import call_after_fork
from .._util.uri import without_credentials
from ..errors import (
    AccessDeniedError,
    InvalidArgumentError,
    RunExistsError,
    RunNotFoundError,
    RunpointError,
    StoreError,
)

TOKEN_ENV = "RUNPOINT_TOKEN"
MSGPACK = "application/msgpack"
RETRY_STATUSES = frozenset({502, 503, 504})
Params = Mapping[str, Any] | list[tuple[str, Any]] | None


def error_for(status: int, detail: str, *, location: str, run_id: str | None = None) -> RunpointError:
    """The runpoint exception for an HTTP error ``status`` with the server's ``detail``."""
    if status in (400, 413, 415, 422):
        argument, sep, message = detail.partition(": ")
        return InvalidArgumentError(argument, message) if sep and " " not in argument else InvalidArgumentError(
            "request", detail)
    if status in (401, 403):
        return AccessDeniedError(detail, status, location)
    if status == 404 and run_id is not None and (detail.startswith("no run matches") or detail == "Not Found"):
        return RunNotFoundError(run_id, location)
    if status == 409 and run_id is not None and "already exists" in detail:
        return RunExistsError(run_id, location)
    if status in (404, 409):
        return RunpointError(detail)
    return StoreError(f"{location}: HTTP {status}: {detail}", location)


def _detail(response: httpx.Response) -> str:
    try:
        value = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    detail = value.get("detail") if isinstance(value, dict) else None
    return detail if isinstance(detail, str) else json.dumps(detail)[:300] if detail is not None else response.reason_phrase


class HttpSession:
    """Calls to one runpoint server.

    Args:
        base_url: ``http(s)://host[:port][/prefix]`` (``https://<token>@host`` also gives the token).
        token: the bearer token; None: the URL's, else ``$RUNPOINT_TOKEN`` (none: send no token).
        timeout: seconds to wait for a reply (connecting: at most 10).
        retries: how often a call that failed to connect (or got 502/503/504) is tried again.
    """

    def __init__(
        self, base_url: str, *, token: str | None = None, timeout: float = 60.0, retries: int = 4,
        backoff: float = 0.2, transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = without_credentials(base_url).rstrip("/")  # never sent as Basic auth
        self.location = self.base_url
        userinfo = urlsplit(base_url).netloc.rpartition("@")[0]  # https://<token>@host also names the token
        in_url = unquote(userinfo.rpartition(":")[2] or userinfo.partition(":")[0])
        self._token = token if token is not None else in_url or os.environ.get(TOKEN_ENV) or None
        self._timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._retries = retries
        self._backoff = backoff
        self._transport = transport
        self._client = self._new_client()
        call_after_fork(self._forget_client_after_fork)

    def __repr__(self) -> str:
        return f"HttpSession({self.location!r})"

    def _new_client(self) -> httpx.Client:
        headers = {"accept": MSGPACK, "user-agent": "runpoint"}
        if self._token:
            headers["authorization"] = f"Bearer {self._token}"
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=self._timeout,
                            transport=self._transport, follow_redirects=False)

    def _forget_client_after_fork(self) -> None:
        self._client = self._new_client()  # the parent's pooled sockets stay the parent's

    def request(
        self, method: str, path: str, *, params: Params = None, json_body: Any = None, content: bytes | None = None,
        content_type: str | None = None, idempotent: bool = True, run_id: str | None = None,
    ) -> httpx.Response:
        """Send one request (retrying as the class says); the response, or the runpoint exception for an error."""
        headers: dict[str, str] = {}
        if json_body is not None:
            content = json.dumps(json_body, default=str).encode()  # NaN as NaN, as the server's parser takes it
            content_type = "application/json"
        if content_type:
            headers["content-type"] = content_type
        attempt = 0
        while True:
            try:
                response = self._client.request(
                    method, path, params=params, content=content, headers=headers)  # type: ignore[arg-type]
            except httpx.TransportError as exc:
                if attempt < self._retries and (idempotent or isinstance(exc, httpx.ConnectError)):
                    self._pause(attempt)
                    attempt += 1
                    continue
                raise StoreError(f"{self.location}: {type(exc).__name__}: {exc}", self.location) from None
            if response.status_code in RETRY_STATUSES and idempotent and attempt < self._retries:
                self._pause(attempt)
                attempt += 1
                continue
            if response.status_code >= 400:
                raise error_for(response.status_code, _detail(response), location=self.location, run_id=run_id)
            return response

    def _pause(self, attempt: int) -> None:
        time.sleep(min(self._backoff * 2**attempt, 5.0))

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """:meth:`request`, and the reply decoded (msgpack or JSON; None when empty)."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        if response.headers.get("content-type", "").startswith(MSGPACK):
            return msgpack.unpackb(response.content, raw=False)
        return response.json()

    def close(self) -> None:
        self._client.close()
