"""``GET /metrics``: runs and running runs in the Prometheus text exposition format.

Served by ``runpoint ui`` and the team server (``runpoint server``), behind the same
authentication as the rest: the dashboard's token, or an API token of the team server, in
``Authorization: Bearer ...`` (Prometheus' ``authorization: {credentials_file: ...}``). A token
limited to a project sees that project's runs only. The families are described in
docs/prometheus.md; what they are read from is :mod:`runpoint.server.prometheus_snapshot`.

The text is rendered by ``prometheus_client`` (a custom collector and ``generate_latest``):
the escaping of label values and the spelling of NaN and infinities are the reference
client's, not a copy of them. One scrape is computed at most every :data:`CACHE_S` seconds
per project scope, however many Prometheus servers scrape.

Example (prometheus.yml)::

    scrape_configs:
      - job_name: runpoint
        authorization: {credentials_file: /etc/prometheus/runpoint-token}
        static_configs: [{targets: ["127.0.0.1:6300"]}]
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from .auth import visible_project
from .context import dashboard
from .prometheus_snapshot import ExportSettings, Snapshot, take_snapshot

CACHE_S = 1.5
HELP_RATE = ("Training steps per second of a running run: (last step - first step) / (wall time between them) "
             "over the last 64 points of its most advanced metric logged within 60 s before its last point")

router = APIRouter(tags=["monitoring"])


class ScrapeCache:
    """The last exposition of each project scope, reused for ``ttl_s`` seconds; one computation at a time."""

    def __init__(self, ttl_s: float = CACHE_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entries: dict[str | None, tuple[float, bytes]] = {}

    def get(self, scope: str | None, compute: Callable[[], bytes]) -> bytes:
        with self._lock:  # concurrent scrapes wait for the one computing instead of repeating it
            entry = self._entries.get(scope)
            if entry is not None and time.monotonic() < entry[0]:
                return entry[1]
            body = compute()
            self._entries[scope] = (time.monotonic() + self.ttl_s, body)
            return body


def _exporter_state(request: Request) -> tuple[ExportSettings, ScrapeCache]:
    state = request.app.state
    if getattr(state, "prometheus", None) is None:
        state.prometheus = (ExportSettings.from_env(), ScrapeCache())
    return state.prometheus  # type: ignore[no-any-return]


@router.get("/metrics", summary="Prometheus metrics of the runs", response_class=PlainTextResponse)
def metrics(request: Request) -> Response:
    """Runs by status, and steps/s, heartbeat age, chosen metrics, checkpoint save times and alerts of running runs."""
    try:
        from prometheus_client import CONTENT_TYPE_LATEST
    except ImportError:
        return PlainTextResponse("/metrics needs prometheus_client: pip install 'runpoint[ui]'\n", status_code=501)
    scope = visible_project(request, None)
    settings, cache = _exporter_state(request)
    ctx = dashboard(request)
    body = cache.get(scope, lambda: render(take_snapshot(ctx.store, ctx.reader, settings, scope)))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def render(snapshot: Snapshot) -> bytes:
    """The snapshot in the Prometheus text format."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot))
    return generate_latest(registry)


class _Collector:
    """A prometheus_client collector over one snapshot (``collect`` builds the metric families)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> list[Any]:
        return []  # nothing to check at registration: the families depend on the snapshot

    def collect(self) -> Iterator[Any]:  # long: one family after another, each with its HELP text
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from ..store.base import RunStatus

        runs = GaugeMetricFamily("runpoint_runs", "Runs by project and status (a running run whose process is "
                                 "gone counts as crashed)", labels=["project", "status"])
        for project, by_status in sorted(self.snapshot.status_counts.items()):
            for status in RunStatus:
                runs.add_metric([project, status.value], by_status.get(status.value, 0))
        yield runs
        per_run = ["run", "project", "name"]
        step = GaugeMetricFamily("runpoint_run_step", "The most advanced step any metric of a running run "
                                 "has logged", labels=per_run)
        rate = GaugeMetricFamily("runpoint_run_steps_per_second", HELP_RATE, labels=per_run)
        heartbeat = GaugeMetricFamily("runpoint_run_heartbeat_age_seconds", "Seconds since a running run's "
                                      "writer last sent its heartbeat (every 5 s while the process lives)",
                                      labels=per_run)
        last_log = GaugeMetricFamily("runpoint_run_last_log_age_seconds", "Seconds since a running run last "
                                     "logged a metric point", labels=per_run)
        values = GaugeMetricFamily("runpoint_run_last_value", "The last value of the chosen metrics of a running "
                                   "run (runpoint ui/server --prometheus-keys)", labels=[*per_run, "key"])
        save = GaugeMetricFamily("runpoint_checkpoint_save_seconds", "Seconds the last checkpoint save of a "
                                 "running run took to write and commit", labels=per_run)
        saves = CounterMetricFamily("runpoint_checkpoint_saves", "Checkpoint saves a running run has "
                                    "committed", labels=per_run)
        alerts = GaugeMetricFamily("runpoint_alerts", "Alerts a running run has raised, by level",
                                   labels=[*per_run, "level"])
        for state in self.snapshot.running:
            run = [state.run.id, state.run.project, state.run.name]
            heartbeat.add_metric(run, state.heartbeat_age_s)
            if state.step is not None:
                step.add_metric(run, state.step)
            if state.last_log_age_s is not None:
                last_log.add_metric(run, state.last_log_age_s)
            if state.steps_per_second is not None:
                rate.add_metric(run, state.steps_per_second)
            for key, value in state.last_values.items():
                values.add_metric([*run, key], value)
            if state.checkpoint_save_s is not None:
                save.add_metric(run, state.checkpoint_save_s)
                saves.add_metric(run, state.checkpoint_saves)
            for level, count in sorted(state.alerts.items()):
                alerts.add_metric([*run, level], count)
        yield from (step, rate, heartbeat, last_log, values, save, saves)
        if self.snapshot.alerts_known:
            yield alerts
