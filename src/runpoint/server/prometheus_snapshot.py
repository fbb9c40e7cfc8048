"""What ``/metrics`` reports, read from the store: runs by status and the state of each running run.

A scrape costs one grouped count of runs, one listing of the running runs, and per running
run its rank rows (the liveness check), its metric stats and the few last points of one
metric (the step rate); alert counts in one call where the store keeps alerts. Nothing is
written: a ``running`` run whose process is gone is counted as crashed here (as the
dashboard would mark it) but left as it is in the store.

Example::

    snapshot = take_snapshot(store, bulk_reader(store), ExportSettings(), project=None)
    snapshot.status_counts            # {"vision": {"running": 2, "completed": 7, ...}}
"""

from __future__ import annotations

import fnmatch
import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ..checkpoint.save_timing import SAVE_SECONDS
from ..run.liveness import run_is_dead
from ..store.base import (
    AlertStore,
    MetricSeries,
    MetricStats,
    RunQuery,
    RunRecord,
    RunStatus,
    Store,
)
from ..store.bulk import BulkReader

KEYS_ENV = "RUNPOINT_PROMETHEUS_KEYS"
DEFAULT_KEYS = ("*loss*", "*acc*")
MAX_KEYS_PER_RUN = 20
RATE_POINTS = 64  # the step rate is measured over at most this many of the last points...
RATE_WINDOW_S = 60.0  # ...logged within this many seconds before the last one


@dataclass(frozen=True)
class ExportSettings:
    """Which metrics' last values ``/metrics`` shows: ``fnmatch`` patterns of keys, at most ``max_keys`` per run.

    Example::

        ExportSettings.parse("loss,val/*")     # keys equal to "loss", or under "val/"
    """

    keys: tuple[str, ...] = DEFAULT_KEYS
    max_keys: int = MAX_KEYS_PER_RUN

    @classmethod
    def parse(cls, text: str) -> "ExportSettings":
        """Settings from a comma-separated list of patterns (empty: no last values at all)."""
        return cls(keys=tuple(part.strip() for part in text.split(",") if part.strip()))

    @classmethod
    def from_env(cls) -> "ExportSettings":
        """``$RUNPOINT_PROMETHEUS_KEYS`` when set, else the defaults (keys containing loss or acc)."""
        text = os.environ.get(KEYS_ENV)
        return cls() if text is None else cls.parse(text)

    def chosen(self, keys: Sequence[str]) -> list[str]:
        """The keys to export: those of the first pattern (sorted), then the second's..., at most ``max_keys``."""
        picked: dict[str, None] = {}
        for pattern in self.keys:
            picked.update(dict.fromkeys(sorted(key for key in keys if fnmatch.fnmatchcase(key, pattern))))
        return list(picked)[: self.max_keys]


@dataclass
class RunState:
    """What is exported of one running run."""

    run: RunRecord
    heartbeat_age_s: float
    step: int | None = None  # the most advanced step of any metric
    last_log_age_s: float | None = None
    steps_per_second: float | None = None
    last_values: dict[str, float] = field(default_factory=dict)
    checkpoint_save_s: float | None = None
    checkpoint_saves: int = 0
    alerts: dict[str, int] = field(default_factory=dict)


@dataclass
class Snapshot:
    """Runs by project and status, and the state of every live running run."""

    status_counts: dict[str, dict[str, int]]
    running: list[RunState]
    alerts_known: bool  # whether the store keeps alerts (then ``RunState.alerts`` is filled)


def take_snapshot(store: Store, reader: BulkReader, settings: ExportSettings, project: str | None) -> Snapshot:
    """Read the snapshot of ``project`` (every project when None) from ``store``."""
    counts = {name: dict(by_status) for name, by_status in reader.status_counts(project).items()}
    now = time.time()
    running: list[RunState] = []
    for run in store.list_runs(RunQuery(project=project, statuses=(RunStatus.RUNNING,))):
        if run_is_dead(store, run, now) is not None:
            _move(counts, run.project, RunStatus.RUNNING, RunStatus.CRASHED)
            continue
        running.append(_run_state(store, run, settings, now))
    alert_counts = _alert_counts(store, [state.run.id for state in running])
    for state in running:
        state.alerts = dict((alert_counts or {}).get(state.run.id, {}))
    return Snapshot(status_counts=counts, running=running, alerts_known=alert_counts is not None)


def _move(counts: dict[str, dict[str, int]], project: str, source: RunStatus, target: RunStatus) -> None:
    by_status = counts.setdefault(project, {})
    by_status[source.value] = max(0, by_status.get(source.value, 0) - 1)
    by_status[target.value] = by_status.get(target.value, 0) + 1


def _run_state(store: Store, run: RunRecord, settings: ExportSettings, now: float) -> RunState:
    stats = store.metric_stats(run.id)
    state = RunState(run=run, heartbeat_age_s=max(0.0, now - run.heartbeat_at))
    saves = stats.pop(SAVE_SECONDS, None)
    if saves is not None:
        state.checkpoint_save_s, state.checkpoint_saves = saves.last, saves.count
    if stats:
        clock = max(stats.values(), key=lambda s: (s.last_step, s.count, s.key))
        state.step = clock.last_step
        state.last_log_age_s = max(0.0, now - max(s.last_time for s in stats.values()))
        state.steps_per_second = steps_per_second(store, run.id, clock)
    state.last_values = {key: stats[key].last for key in settings.chosen(list(stats))}
    return state


def steps_per_second(store: Store, run_id: str, clock: MetricStats) -> float | None:
    """Steps per wall-clock second over the last points of ``clock`` (None with fewer than two, or no time between).

    The span is the run's last :data:`RATE_POINTS` points of that metric logged within
    :data:`RATE_WINDOW_S` seconds before its last one: (last step - first step) / (last time - first time).
    """
    series = _last_points(store, run_id, clock, RATE_POINTS)
    steps, times = series.steps[-RATE_POINTS:], series.times[-RATE_POINTS:]
    if len(steps) < 2:
        return None
    first = 0
    while first < len(times) - 1 and times[first] < times[-1] - RATE_WINDOW_S:
        first += 1
    elapsed = times[-1] - times[first]
    if elapsed <= 0:
        return None
    return (steps[-1] - steps[first]) / elapsed


def _last_points(store: Store, run_id: str, stats: MetricStats, count: int) -> MetricSeries:
    """At least the last ``count`` points of a metric (fewer if it has fewer), reading little more.

    SQLite reads only the chunks that hold them; elsewhere the step range is estimated from
    the metric's points per step so far, and the points above it are read.
    """
    from ..store.sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from ..store.sqlite.tail import read_metric_tail

        return read_metric_tail(store, run_id, stats.key, offset=max(0, stats.count - count))
    steps_per_point = (stats.last_step + 1) / max(stats.count, 1)
    return store.read_metric(run_id, stats.key, min_step=stats.last_step - math.ceil(count * steps_per_point))


def _alert_counts(store: Store, run_ids: list[str]) -> Mapping[str, Mapping[str, int]] | None:
    """Alerts by run and level where the store keeps alerts; None where it does not."""
    counts: Any = store.alert_counts if isinstance(store, AlertStore) else getattr(store, "alert_counts", None)
    if counts is None:
        return None
    return counts(run_ids) if run_ids else {}
