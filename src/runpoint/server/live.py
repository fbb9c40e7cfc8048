"""Following a running run: its new metric points, status changes and end, as Server-Sent Events.

A :class:`RunFollower` keeps, per metric key, the last step a client has and the point count
it last saw. Each :meth:`RunFollower.poll` reads the run's record and ``metric_stats`` (one
cheap query each) and reads points only of the keys whose count grew, from the step after
the client's (``read_metric(min_step=...)``, a protocol method: SQLite, PostgreSQL and the
HTTP store all push it down to their chunks). It is blocking and runs in a worker thread;
:func:`sse` formats what it found for the wire.

Events (``event:`` name, JSON ``data:``):

- ``state``: ``{status, heartbeat_at, ended_at, error}``, first and whenever the status changes.
- ``metrics``: ``{key: {steps, values, times}}``, the new points; non-finite values are null.
- ``reload``: ``{keys: [...]}``: points the stream will not send (more than
  :data:`MAX_POINTS_PER_KEY` at once, or the run forgot points after a resume): refetch them.
- ``end``: the run finished (every point was sent before); the server then closes the stream.

A point logged again at a step the client already has is not sent (the step cursor has
passed it); the chart's next full fetch shows it.

Example::

    follower = RunFollower(store, run.id, after={"train/loss": 99})
    for name, data in follower.poll():
        print(sse(name, data))
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Mapping

from .. import query
from ..store.base import MetricSeries, MetricStats, RunRecord, Store

MAX_POINTS_PER_KEY = 20_000  # beyond this a key's backlog is a "reload": the chart fetches it downsampled
REAP_INTERVAL_S = 2.0  # how often a running run's process is checked for death (crash detection)

Event = tuple[str, dict[str, Any]]


class RunFollower:
    """What a client of one run has seen, and what is new since (see the module docstring).

    Args:
        after: per key, the last step the client has: points after it are sent.
        since: the last step the client has of keys not in ``after``; None: all their points.
    """

    def __init__(self, store: Store, run_id: str, *, after: Mapping[str, int] | None = None,
                 since: int | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.after: dict[str, int] = dict(after or {})
        self.since = since
        self.counts: dict[str, int] = {}
        self.status: str | None = None
        self.ended = False
        self._reaped_at = 0.0

    def poll(self) -> list[Event]:
        """The events since the last poll (blocking: call it from a worker thread)."""
        run = self._run()  # first: a run that has ended had flushed every point before it said so
        events: list[Event] = []
        if run.status.value != self.status:
            self.status = run.status.value
            events.append(("state", {"status": run.status.value, "heartbeat_at": run.heartbeat_at,
                                     "ended_at": run.ended_at, "error": run.error}))
        points, reload = self._new_points(self.store.metric_stats(self.run_id))
        if points:
            events.append(("metrics", points))
        if reload:
            events.append(("reload", {"keys": reload}))
        if run.status.is_final:
            self.ended = True
            events.append(("end", {"status": run.status.value}))
        return events

    def _run(self) -> RunRecord:
        now = time.monotonic()
        if self.status == "running" and now - self._reaped_at < REAP_INTERVAL_S:
            return self.store.get_run(self.run_id)
        self._reaped_at = now
        return query.resolve_run(self.store, self.run_id)  # marks a run whose process died as crashed

    def _new_points(self, stats: Mapping[str, MetricStats]) -> tuple[dict[str, Any], list[str]]:
        points: dict[str, Any] = {}
        reload = [key for key in self.counts if key not in stats]  # every point forgotten (a resume)
        for key in reload:
            del self.counts[key]
            self.after.pop(key, None)
        for key, stat in stats.items():
            seen = self.counts.get(key)
            if seen == stat.count:
                continue  # nothing new: no read
            self.counts[key] = stat.count
            known = self.after.get(key)
            last = self.since if known is None else known
            if (seen is not None and stat.count < seen) or (known is not None and stat.last_step < known):
                reload.append(key)  # the run forgot points (a resume from a checkpoint): refetch
                self.after[key] = stat.last_step
                continue
            if last is not None and stat.last_step <= last:
                continue
            backlog = stat.count - seen if seen is not None else stat.count if last is None else None
            if backlog is not None and backlog > MAX_POINTS_PER_KEY:  # known too long without reading it
                reload.append(key)
                self.after[key] = stat.last_step
                continue
            series = self.store.read_metric(self.run_id, key, min_step=None if last is None else last + 1)
            if len(series) > MAX_POINTS_PER_KEY:
                reload.append(key)
            elif len(series):
                points[key] = _as_json(series)
            self.after[key] = max(stat.last_step, max(series.steps, default=stat.last_step))
        return points, reload


def _as_json(series: MetricSeries) -> dict[str, Any]:
    return {
        "steps": list(series.steps),
        "values": [v if math.isfinite(v) else None for v in series.values],
        "times": list(series.times),
    }


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event: its name and its data as one line of JSON."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def sse_comment(text: str) -> bytes:
    """A comment line: keeps proxies and the browser from closing an idle stream."""
    return f": {text}\n\n".encode()


def parse_after(text: str | None) -> dict[str, int]:
    """The ``after`` query parameter: a JSON object of metric key -> last step; ValueError when it is not."""
    if not text:
        return {}
    example = 'give a JSON object of metric key -> step, e.g. {"train/loss": 99}'
    try:
        value = json.loads(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not JSON: {example}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items()
    ):
        raise ValueError(example)
    return value
