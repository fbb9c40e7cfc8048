"""Reading alerts: one run's, or those of every run of a root (or project), filtered by level.

Example::

    from runpoint.query.alerts import list_alerts
    for alert in list_alerts(store, min_level="warning"):
        print(alert.run_id, alert.level, alert.title)
"""

from __future__ import annotations

from typing import Sequence

from ..errors import InvalidArgumentError
from ..store.base import AlertRecord, RunQuery, Store
from ..store.registry import alert_store

LEVELS = ("info", "warning", "error")


def check_level(level: str | None) -> str | None:
    """``level`` if it is one of info, warning, error (or None); InvalidArgumentError otherwise."""
    if level is not None and level not in LEVELS:
        raise InvalidArgumentError("level", f"{level!r} is not one of {', '.join(LEVELS)}")
    return level


def _at_least(level: str | None) -> set[str]:
    return set(LEVELS[LEVELS.index(level):]) if level is not None else set(LEVELS)


def alert_counts(store: Store, run_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """For each run with alerts: level -> how many (empty when the store keeps no alerts)."""
    alerts = alert_store(store)
    return alerts.alert_counts(list(run_ids)) if alerts is not None and run_ids else {}


def list_alerts(
    store: Store, run_id: str | None = None, *, min_level: str | None = None, project: str | None = None,
    limit: int | None = None,
) -> list[AlertRecord]:
    """Alerts of ``run_id`` (else of every run, or of ``project``'s), oldest first; the newest ``limit``."""
    alerts = alert_store(store)
    if alerts is None:
        return []
    wanted = _at_least(check_level(min_level))
    if run_id is not None:
        run_ids = [run_id]
    else:
        ids = [run.id for run in store.list_runs(RunQuery(project=project))]
        counts = alerts.alert_counts(ids)
        run_ids = [i for i in ids if any(level in wanted for level in counts.get(i, {}))]
    found = [a for i in run_ids for a in alerts.read_alerts(i) if a.level in wanted]
    found.sort(key=lambda a: (a.time, a.run_id, a.id))
    return found[-limit:] if limit else found
