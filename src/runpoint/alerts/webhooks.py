"""Sending alerts to webhooks on a thread of their own: bounded queue, timeouts, retries with backoff.

Nothing here ever blocks the caller: :meth:`WebhookSender.send` puts the alert in a queue
of ``queue_size`` (a full queue drops it, and says so once); the thread POSTs it to every
target whose ``min_level`` it reaches, each request bounded by ``timeout_s``, a failure
(an error status, a refused or timed-out connection) retried ``retries`` times with
doubling backoff. :meth:`close` waits at most ``wait_s`` for what is pending, then leaves
the (daemon) thread behind. Webhook URLs carry secrets: logs show them masked
(:func:`mask_url`).

Example::

    sender = WebhookSender([Target("https://hooks.slack.com/services/T/B/X", "slack")])
    sender.send(alert, run_name="swift-heron-7", project="digits")
    sender.close(wait_s=5)
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .._util.uri import without_credentials
from ..store.records import AlertRecord
from .findings import LEVELS

logger = logging.getLogger("runpoint.alerts")

_EMOJI = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}
_STOP = object()


@dataclass(frozen=True)
class Target:
    """One webhook: where, in which format (``json`` or ``slack``), from which level on."""

    url: str
    format: str = "json"
    min_level: str = "warning"

    def wants(self, level: str) -> bool:
        return LEVELS.index(level) >= LEVELS.index(self.min_level)  # type: ignore[arg-type]


def mask_url(url: str) -> str:
    """``url`` safe to print: no credentials, no query, and only the first part of its path.

    >>> mask_url("https://hooks.slack.com/services/T000/B000/XXXX")
    'https://hooks.slack.com/services/********'
    """
    parts = urlsplit(without_credentials(url))
    first, _, rest = parts.path.lstrip("/").partition("/")
    path = f"/{first}" + ("/********" if rest or parts.query else "") if first else ("/********" if parts.query else "")
    return f"{parts.scheme}://{parts.netloc}{path}"


def json_payload(alert: AlertRecord, run_name: str, project: str) -> dict[str, Any]:
    """The generic payload: the alert's fields, and the run's name and project."""
    return {"run_id": alert.run_id, "run_name": run_name, "project": project, "level": alert.level,
            "kind": alert.kind, "title": alert.title, "text": alert.text, "step": alert.step, "key": alert.key,
            "time": alert.time}


def slack_payload(alert: AlertRecord, run_name: str, project: str) -> dict[str, Any]:
    """A Slack-compatible message (``text`` for notifications, ``blocks`` for the layout)."""
    where = f"{project}/{run_name} ({alert.run_id})"
    step = f" at step {alert.step}" if alert.step is not None else ""
    headline = f"{_EMOJI.get(alert.level, '')} [{alert.level}] {alert.title}".strip()
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{alert.text}".rstrip()}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"run {where}{step} · {alert.kind}"}]},
    ]
    return {"text": f"{headline} — run {where}{step}", "blocks": blocks}


class WebhookSender:
    """A daemon thread that POSTs alerts to ``targets``."""

    def __init__(self, targets: list[Target], *, timeout_s: float = 5.0, retries: int = 3, queue_size: int = 100,
                 backoff_s: float = 0.5) -> None:
        self.targets = targets
        self.timeout_s, self.retries, self.backoff_s = timeout_s, retries, backoff_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._closing = threading.Event()
        self.sent = self.failed = self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name="runpoint-webhooks", daemon=True)
        self._thread.start()

    def send(self, alert: AlertRecord, *, run_name: str, project: str) -> None:
        """Queue ``alert`` for every target that wants its level; never blocks."""
        if not any(target.wants(alert.level) for target in self.targets):
            return
        try:
            self._queue.put_nowait((alert, run_name, project))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                logger.warning("runpoint: the webhook queue is full (%d alerts): dropping alerts until it drains",
                               self._queue.maxsize)

    def close(self, wait_s: float = 5.0) -> bool:
        """Wait up to ``wait_s`` for pending alerts to be sent; True if all were."""
        deadline = time.monotonic() + wait_s
        try:
            self._queue.put(_STOP, timeout=max(0.0, wait_s))
        except queue.Full:
            pass
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._closing.set()  # backoff sleeps end now; the thread finishes its current request and stops
        done = not self._thread.is_alive()
        if not done:
            logger.warning("runpoint: %d alert(s) not yet delivered to webhooks; not waiting longer than %g s",
                           self._queue.qsize(), wait_s)
        return done

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP or self._closing.is_set():
                return
            alert, run_name, project = item
            for target in self.targets:
                if target.wants(alert.level):
                    self._deliver(target, alert, run_name, project)

    def _deliver(self, target: Target, alert: AlertRecord, run_name: str, project: str) -> None:
        build = slack_payload if target.format == "slack" else json_payload
        body = json.dumps(build(alert, run_name, project), default=str).encode()
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            error = self._post(target.url, body)
            if error is None:
                self.sent += 1
                return
            if attempt == self.retries or self._closing.wait(delay):
                break
            delay *= 2
        self.failed += 1
        logger.warning("runpoint: could not send alert %r to webhook %s: %s", alert.title, mask_url(target.url), error)

    def _post(self, url: str, body: bytes) -> str | None:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "runpoint"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(65536)
            return None
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return str(reason).replace(url, mask_url(url))[:200]
