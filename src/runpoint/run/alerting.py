"""A run's alerts: ``run.alert``'s records, the settings ``rp.init(alerts=...)`` resolves, and the
:class:`~runpoint.alerts.AlertMonitor` attached to the run's writer.

Example::

    settings = alert_settings(alerts, plain_config)     # experiment.alerts, with rp.init's alerts= over it
    attach_alerts(run, settings, detect=run.rank == 0)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Mapping

from pydantic import ValidationError

from ..alerts import AlertMonitor
from ..config.alerts import AlertsConfig
from ..errors import InvalidArgumentError
from ..store.records import AlertRecord
from ..store.wire import ALERT_LEVELS, MAX_ALERT_TEXT, MAX_ALERT_TITLE

if TYPE_CHECKING:
    from .run import Run


def user_alert(run_id: str, title: Any, text: Any, level: Any, step: int | None) -> AlertRecord:
    """The record of a ``run.alert`` call; InvalidArgumentError naming a bad argument."""
    if not isinstance(title, str) or not title.strip() or len(title) > MAX_ALERT_TITLE:
        raise InvalidArgumentError("title", f"must be a non-empty string of at most {MAX_ALERT_TITLE} characters")
    if not isinstance(text, str) or len(text) > MAX_ALERT_TEXT:
        raise InvalidArgumentError("text", f"must be a string of at most {MAX_ALERT_TEXT} characters")
    if level not in ALERT_LEVELS:
        raise InvalidArgumentError("level", f"{level!r} is not one of {', '.join(ALERT_LEVELS)}")
    return AlertRecord(run_id=run_id, time=time.time(), level=level, kind="user", title=title, text=text,
                       step=step if step is not None and step >= 0 else None)


def _merged(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), dict) else value
    return out


def alert_settings(alerts: Any, plain_config: Mapping[str, Any]) -> AlertsConfig:
    """``experiment.alerts`` of the config with ``alerts`` over it: None/True keep it, False turns
    detectors and webhooks off, a dict is merged over it, an :class:`AlertsConfig` replaces it."""
    if isinstance(alerts, AlertsConfig):
        return alerts
    experiment = plain_config.get("experiment")
    section = experiment.get("alerts") if isinstance(experiment, Mapping) else None
    base = dict(section) if isinstance(section, Mapping) else {}
    if alerts is False:
        base = _merged(base, {"enabled": False, "webhooks": []})
    elif isinstance(alerts, Mapping):
        base = _merged(base, alerts)
    elif alerts is not None and alerts is not True:
        raise InvalidArgumentError("alerts", f"must be a dict, an AlertsConfig, True or False, not {type(alerts).__qualname__}")
    try:
        return AlertsConfig.model_validate(base)
    except ValidationError as exc:
        where = "alerts" if isinstance(alerts, Mapping) else "experiment.alerts"
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or where}: {e['msg']}" for e in exc.errors()[:5])
        raise InvalidArgumentError(where, problems) from None


def attach_alerts(run: "Run", settings: AlertsConfig, *, detect: bool) -> AlertMonitor | None:
    """Put ``settings``' detectors on ``run``'s writer; the run's end waits for pending webhooks."""
    writer = run._writer
    if not hasattr(writer, "inspectors"):
        return None
    monitor = AlertMonitor(run.id, settings, run_name=run.name, project=run.project, detect=detect)
    writer.inspectors.append(monitor.inspect)
    run._after_close.insert(0, monitor.close)
    return monitor
