"""The alerts of one run: detectors over each batch, rate limiting, stderr and webhooks.

:class:`AlertMonitor` is called by the run's writer thread (never the training loop) with
each batch it collected, before the batch is written: it feeds the batch's points to the
detectors its :class:`~runpoint.config.alerts.AlertsConfig` enables, checks for a stall
(the writer collects about every half second, so this is the stall timer), lets the
alerts through the rate limiter, and puts them in the batch, so an alert is stored in the
same transaction as the points that raised it. Alerts already in the batch (``run.alert``)
go the same way. Each stored alert is logged once on the ``runpoint`` logger (one line:
level, run, title) and handed to the webhooks' thread.

Example::

    monitor = AlertMonitor(run.id, AlertsConfig(), run_name=run.name, project=run.project)
    writer.inspectors.append(monitor.inspect)
    ...
    monitor.close()            # waits a bounded time for pending webhooks
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from ..config.alerts import AlertsConfig
from ..store.records import AlertRecord, MetricSeries, WriteBatch
from .findings import Finding, KeyMatcher
from .nonfinite import NonFiniteDetector
from .progress import StallDetector, ThroughputDetector
from .ratelimit import RateLimiter
from .spike import SpikeDetector
from .trend import DivergenceDetector, PlateauDetector
from .webhooks import Target, WebhookSender

logger = logging.getLogger("runpoint")

_PASSIVE_PREFIXES = ("system/",)  # logged by runpoint's own sampler thread: proof of life, not of progress
# info alerts too are printed: WARNING is what Python shows when the program set up no logging
_LOG_LEVELS = {"info": logging.WARNING, "warning": logging.WARNING, "error": logging.ERROR}


def _series_detectors(settings: AlertsConfig) -> list[tuple[KeyMatcher, object]]:
    chosen: list[tuple[KeyMatcher, object]] = []
    if settings.nonfinite.enabled:
        chosen.append((KeyMatcher(settings.nonfinite.keys), NonFiniteDetector(settings.nonfinite.level)))
    spike = settings.spike
    if spike.enabled:
        chosen.append((KeyMatcher(spike.keys), SpikeDetector(
            window=spike.window, z_threshold=spike.z_threshold, min_points=spike.min_points, level=spike.level)))
    divergence = settings.divergence
    if divergence.enabled:
        chosen.append((KeyMatcher(divergence.keys), DivergenceDetector(
            evaluations=divergence.evaluations, mode=divergence.mode, level=divergence.level)))
    plateau = settings.plateau
    if plateau.enabled:
        chosen.append((KeyMatcher(plateau.keys), PlateauDetector(
            patience_steps=plateau.patience_steps, min_delta=plateau.min_delta, mode=plateau.mode,
            level=plateau.level)))
    return chosen


class AlertMonitor:
    """Detect, limit, store (through the batch) and announce one run's alerts."""

    def __init__(self, run_id: str, settings: AlertsConfig, *, run_name: str = "", project: str = "",
                 detect: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.run_id, self.run_name, self.project = run_id, run_name, project
        self.settings = settings
        self._clock = clock
        detect = detect and settings.enabled
        self._detectors = _series_detectors(settings) if detect else []
        self._routes: dict[str, tuple] = {}  # key -> the detectors that watch it
        now = clock()
        self._stall = StallDetector(after_s=settings.stall.after_s, now=now, level=settings.stall.level) \
            if detect and settings.stall.enabled else None
        throughput = settings.throughput
        self._throughput = ThroughputDetector(
            fraction=throughput.fraction, window_s=throughput.window_s, history=throughput.history,
            min_samples=throughput.min_samples, patience=throughput.patience, level=throughput.level,
        ) if detect and throughput.enabled else None
        self.limiter = RateLimiter(settings.max_per_minute)
        self._last_step: int | None = None
        targets = [Target(w.url, w.format, w.min_level) for w in settings.webhooks]
        self.webhooks = WebhookSender(
            targets, timeout_s=settings.webhook_timeout_s, retries=settings.webhook_retries,
            queue_size=settings.webhook_queue) if targets else None

    # -- the writer thread -----------------------------------------------------------

    def inspect(self, batch: WriteBatch) -> None:
        """Add the alerts ``batch``'s points raise to it; rate-limit and announce every alert in it."""
        now = self._clock()
        findings = self._detect(batch, now) if (self._detectors or self._stall or self._throughput) else []
        if not findings and not batch.alerts and not self.limiter.suppressed:
            return
        kept = [self._record(f, now) for f in self.limiter.summaries(now)]
        for finding, when in findings:  # about points logged before the batch's run.alert calls
            if self.limiter.admit(finding.kind, now):
                kept.append(self._record(finding, when))
        for alert in batch.alerts:
            if self.limiter.admit(alert.kind, now):
                kept.append(alert if alert.run_id else _with_run(alert, self.run_id))
        batch.alerts = kept
        for alert in kept:
            self._announce(alert)

    def _detect(self, batch: WriteBatch, now: float) -> list[tuple[Finding, float]]:
        """The findings, each with its time: that of the point it is about, else now."""
        found: list[tuple[Finding, float]] = []
        progressed: tuple[int, float] | None = None
        routes = self._routes
        for key, series in batch.metrics.items():
            detectors = routes.get(key)
            if detectors is None:
                detectors = routes[key] = tuple(d for watched, d in self._detectors if watched(key))
            for detector in detectors:
                for finding in detector.observe(key, series.steps, series.values):  # type: ignore[attr-defined]
                    found.append((finding, _time_of(series, finding.step, now)))
            if len(series) and not key.startswith(_PASSIVE_PREFIXES):
                last = (series.steps[-1], series.times[-1])
                if progressed is None or last[0] > progressed[0]:
                    progressed = last
        if progressed is not None:
            self._last_step = progressed[0]
            if self._stall is not None:
                self._stall.activity(now)
            if self._throughput is not None:
                slow = self._throughput.observe(*progressed)
                if slow is not None:
                    found.append((slow, progressed[1]))
        elif self._stall is not None:
            stalled = self._stall.check(now, self._last_step)
            if stalled is not None:
                found.append((stalled, now))
        return found

    def _record(self, finding: Finding, now: float) -> AlertRecord:
        return AlertRecord(run_id=self.run_id, time=now, level=finding.level, kind=finding.kind,
                           title=finding.title, text=finding.text, step=finding.step, key=finding.key)

    def _announce(self, alert: AlertRecord) -> None:
        logger.log(_LOG_LEVELS.get(alert.level, logging.WARNING), "runpoint: %s alert, run %s: %s",
                   alert.level, self.run_id, alert.title)
        if self.webhooks is not None:
            self.webhooks.send(alert, run_name=self.run_name, project=self.project)

    # -- the run's end ---------------------------------------------------------------

    def close(self) -> None:
        """Give pending webhooks at most ``close_wait_s`` to go out."""
        if self.webhooks is not None:
            self.webhooks.close(self.settings.close_wait_s)


def _time_of(series: MetricSeries, step: int | None, default: float) -> float:
    try:
        return series.times[series.steps.index(step)]  # type: ignore[arg-type]
    except ValueError:
        return default


def _with_run(alert: AlertRecord, run_id: str) -> AlertRecord:
    from dataclasses import replace

    return replace(alert, run_id=run_id)
