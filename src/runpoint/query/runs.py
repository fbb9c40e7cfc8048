"""The read side: finding runs, filtering them, and reading what they recorded.

The CLI, the dashboard and scripts all read through here, never through SQL, so that
crash detection (a ``running`` run whose process is gone becomes ``crashed``) happens on
every read.

Example::

    from runpoint import query

    store = query.open_root("runpoint")
    for run in query.list_runs(store, project="digits", where=["params.training.lr > 1e-4"]):
        print(run.id, query.metric_history(store, run.id, "val/loss").values[-1])
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..artifacts.paths import DB_NAME, ROOT_ENV, resolve_root, run_directory
from ..errors import InvalidArgumentError, RunNotFoundError, StoreError
from ..run.liveness import reap_crashed
from ..run.summary import metric_summary
from ..store import (
    Condition,
    MediaKey,
    MediaRecord,
    MediaStore,
    MetricSeries,
    RunQuery,
    RunRecord,
    RunStatus,
    Store,
    open_store,
)

_CONDITION = re.compile(
    r"^\s*(?P<scope>params|config|metrics|summary)\.(?P<key>\S+?)\s*(?P<op><=|>=|!=|==|=|<|>)\s*(?P<value>.*?)\s*$"
)


def open_root(root: str | os.PathLike[str] | None = None) -> Store:
    """The store of an existing root; :class:`StoreError` when there is none."""
    location = os.fspath(root) if root is not None else os.environ.get(ROOT_ENV)
    if location and "://" in location and not location.startswith("file://"):
        return open_store(location, create=False)
    path = resolve_root(root)
    if path.exists() and not path.is_dir():
        raise StoreError(f"{path} is a file, not a runpoint root; point --root or $RUNPOINT_ROOT at a directory", path)
    if not (path / DB_NAME).exists():
        raise StoreError(
            f"no runpoint store at {path} (run `runpoint demo`, or rp.init() in a script, to create one; "
            "--root or $RUNPOINT_ROOT point elsewhere)",
            path,
        )
    return open_store(path, create=False)


def parse_value(text: str) -> float | int | bool | str | None:
    """A filter operand: numbers, true/false, null, or a string (quotes optional)."""
    lowered = text.lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"null", "none"}:
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def parse_condition(text: str) -> Condition:
    """``"params.training.lr > 1e-4"`` -> :class:`Condition`. ``config.`` means ``params.``."""
    match = _CONDITION.match(text)
    if not match or not match["value"]:
        raise InvalidArgumentError(
            "where", f"cannot read {text!r}: expected <params|metrics|summary>.<key> <op> <value>, "
            "e.g. 'params.training.lr > 1e-4' or 'metrics.val/loss < 0.5'"
        )
    scope = "params" if match["scope"] == "config" else match["scope"]
    op = "=" if match["op"] == "==" else match["op"]
    value = parse_value(match["value"])
    if scope == "metrics" and not isinstance(value, (int, float)):
        raise InvalidArgumentError("where", f"{text!r}: metrics compare against numbers")
    if not isinstance(value, (int, float)) and op not in {"=", "!="}:
        raise InvalidArgumentError("where", f"{text!r}: {op} needs a number; strings compare with = or !=")
    return Condition(scope=scope, key=match["key"], op=op, value=value)  # type: ignore[arg-type]


def list_runs(
    store: Store,
    *,
    project: str | None = None,
    tags: Iterable[str] = (),
    status: str | RunStatus | Sequence[str | RunStatus] | None = None,
    where: Iterable[str | Condition] = (),
    group: str | None = None,
    config_hash: str | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> list[RunRecord]:
    """Runs matching every filter given, newest first; crashed runs are detected on the way."""
    statuses: tuple[RunStatus, ...] = ()
    if status is not None:
        raw = [status] if isinstance(status, (str, RunStatus)) else list(status)
        try:
            statuses = tuple(RunStatus(s) for s in raw)
        except ValueError:
            known = ", ".join(s.value for s in RunStatus)
            raise InvalidArgumentError("status", f"{status!r} is not one of {known}") from None
    for name, given in (("tags", tags), ("where", where)):
        if isinstance(given, str):  # iterating it would filter by single characters
            raise InvalidArgumentError(name, f"must be a list of strings, not the string {given!r}")
    conditions = tuple(c if isinstance(c, Condition) else parse_condition(c) for c in where)
    if limit is not None and limit < 1:
        raise InvalidArgumentError("limit", "must be at least 1")
    if statuses:
        # a run found dead changes status, so detect crashes before filtering by status
        _reap_running(store, project)
    query = RunQuery(
        project=project, tags=tuple(tags), statuses=statuses, group=group, config_hash=config_hash,
        conditions=conditions, newest_first=newest_first, limit=limit,
    )
    try:
        runs = store.list_runs(query)
    except ValueError as exc:
        raise InvalidArgumentError("where", str(exc)) from None
    return reap_crashed(store, runs)


def _reap_running(store: Store, project: str | None) -> None:
    reap_crashed(store, store.list_runs(RunQuery(project=project, statuses=(RunStatus.RUNNING,))))


def resolve_run(store: Store, ref: str, *, project: str | None = None) -> RunRecord:
    """A run by exact id, unique id prefix, exact name, or ``latest``; only among ``project``'s runs when given."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidArgumentError("run", "give a run id, an id prefix, a run name or 'latest'")
    ref = ref.strip()
    if ref == "latest":
        runs = store.list_runs(RunQuery(project=project, limit=1))
        if not runs:
            where = "the store" if project is None else f"project {project!r}"
            raise RunNotFoundError(ref, store.location, hint=f"{where} has no runs")
        return reap_crashed(store, runs)[0]
    matches = [run for run in store.find_runs(ref) if project is None or run.project == project]
    exact = [run for run in matches if run.id == ref]
    if exact:
        matches = exact
    if not matches:
        raise RunNotFoundError(ref, store.location, hint="`runpoint ls` lists the runs")
    if len(matches) > 1:
        listed = ", ".join(f"{run.id} ({run.name})" for run in matches[:5])
        raise InvalidArgumentError("run", f"{ref!r} matches {len(matches)} runs: {listed}; give more of the id")
    return reap_crashed(store, matches)[0]


def metric_history(
    store: Store, run_id: str, key: str, *, min_step: int | None = None, max_step: int | None = None
) -> MetricSeries:
    """Every point of one metric; :class:`RunNotFoundError`-style error if it was never logged."""
    series = store.read_metric(run_id, key, min_step=min_step, max_step=max_step)
    if not len(series) and key not in store.metric_keys(run_id):
        keys = store.metric_keys(run_id)
        hint = f"it has: {', '.join(keys[:20])}" if keys else "it has logged no metrics"
        raise InvalidArgumentError("key", f"run {run_id} has no metric {key!r}; {hint}")
    return series


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat(timespec="seconds")


def record_dict(run: RunRecord) -> dict[str, Any]:
    """A run's record as JSON-ready data."""
    data = asdict(run)
    data["status"] = run.status.value
    data["tags"] = list(run.tags)
    data["created"] = _iso(run.created_at)
    data["ended"] = _iso(run.ended_at)
    data["duration_s"] = round(run.duration, 3)
    return data


def run_details(store: Store, run: RunRecord) -> dict[str, Any]:
    """Everything ``runpoint show`` prints: record, config, summary, metric stats, metadata."""
    stats = store.metric_stats(run.id)
    return {
        "run": record_dict(run),
        "params": store.get_params(run.id),
        "summary": store.get_summary(run.id),
        "metrics": {
            key: {
                "count": s.count, "last": s.last, "last_step": s.last_step,
                "min": s.min, "min_step": s.min_step, "max": s.max, "max_step": s.max_step,
            }
            for key, s in stats.items()
        },
        "meta": store.get_meta(run.id),
        "ranks": [
            {"rank": r.rank, "host": r.host, "pid": r.pid, "status": r.status.value, "started_at": r.started_at,
             "ended_at": r.ended_at, "heartbeat_at": r.heartbeat_at, "error": r.error, "job": r.job}
            for r in store.list_ranks(run.id)
        ],
    }


def full_summary(store: Store, run_id: str) -> dict[str, Any]:
    """What ``run.summary`` shows: derived last/min/max, overridden by values the user set."""
    merged = metric_summary(store, run_id)
    merged.update(store.get_summary(run_id))
    return merged


@dataclass
class Comparison:
    """Runs side by side: config values that differ, and final metrics."""

    runs: list[RunRecord]
    params: dict[str, list[Any]] = field(default_factory=dict)  # key -> value per run (None: absent)
    same_params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[float | None]] = field(default_factory=dict)  # key -> last per run

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [record_dict(run) for run in self.runs],
            "params_differing": self.params,
            "params_same": self.same_params,
            "metrics_last": self.metrics,
        }


_ABSENT = object()


def compare(store: Store, runs: Sequence[RunRecord]) -> Comparison:
    """Config differences and final metrics of ``runs``, in the order given."""
    params = [store.get_params(run.id) for run in runs]
    stats = [store.metric_stats(run.id) for run in runs]
    comparison = Comparison(runs=list(runs))
    for key in sorted(set().union(*params)) if params else []:
        values = [p.get(key, _ABSENT) for p in params]
        canonical = {json.dumps(v, sort_keys=True, default=str) for v in values if v is not _ABSENT}
        if len(canonical) == 1 and _ABSENT not in values:
            comparison.same_params[key] = values[0]
        else:
            comparison.params[key] = [None if v is _ABSENT else v for v in values]
    for key in sorted(set().union(*stats)) if stats else []:
        comparison.metrics[key] = [s[key].last if key in s else None for s in stats]
    return comparison


def media_store(store: Store) -> MediaStore:
    """The read side of a store's logged media."""
    if isinstance(store, MediaStore):
        return store
    from ..store.sqlite.media import SQLiteMediaStore
    from ..store.sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteMediaStore(store)
    raise StoreError(f"the store at {store.location} cannot read media", store.location)


def media_keys(store: Store, run_id: str) -> list[MediaKey]:
    """Every media key a run logged, with its kind and step range."""
    return media_store(store).media_keys(run_id)


def read_media(
    store: Store, run_id: str, key: str, *, step: int | None = None,
    min_step: int | None = None, max_step: int | None = None,
) -> list[MediaRecord]:
    """The records of one media key in step order; a file's ``path`` is relative to :func:`run_dir`.

    Example::

        for record in query.read_media(store, run.id, "val/samples"):
            print(record.step, query.run_dir(store, run) / record.path)
    """
    records = media_store(store).read_media(run_id, key, step=step, min_step=min_step, max_step=max_step)
    if not records and all(k.key != key for k in media_keys(store, run_id)):
        known = [k.key for k in media_keys(store, run_id)]
        hint = f"it has: {', '.join(known[:20])}" if known else "it has logged no media"
        raise InvalidArgumentError("key", f"run {run_id} has no media {key!r}; {hint}")
    return records


def run_dir(store: Store, run: RunRecord) -> Path:
    """The directory of ``run`` on this machine (its root is where the store's database is).

    Refuses (``StoreError``) a recorded directory outside the root.
    """
    return run_directory(Path(store.location).parent, run.dir, run.id)
