"""Which runs ``runpoint gc`` deletes, and why each listed run goes or stays.

A run is a candidate when it ended (``completed``, ``failed``, ``killed``, ``crashed``;
``--status`` narrows that) longer ago than ``older_than``: its end time, or its last
heartbeat when it has none. A candidate is kept, and listed with the reason, when

- it has a tag of ``keep_tags``;
- a registered model version came from it (deleting the run would delete that checkpoint);
- it is one of the newest ``keep_last`` runs of its project.

A ``running`` run is never a candidate. Runs are read through :func:`runpoint.query.list_runs`,
which first marks runs whose process died as ``crashed`` (the judgement of
:mod:`runpoint.run.liveness`); a run still ``running`` after that has a live process (or a
fresh heartbeat) and is listed as kept when it started before the cutoff.

Example::

    rule = GcRule.parse(older_than="30d", statuses="failed,crashed")
    plan = plan_gc(store, rule)
    for entry in plan.entries:
        print(entry.run.id, entry.delete, entry.reason, entry.usage.total)
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from .._util.durations import format_duration, parse_duration
from .._util.uri import without_credentials
from ..errors import InvalidArgumentError, StoreError
from ..query import list_runs, record_dict, run_dir
from ..store import RunRecord, RunStatus, Store
from ..store.registry import model_registry, registered_steps
from .usage import Usage, run_usage

if TYPE_CHECKING:
    from ..config.schema import RetentionPolicy

ENDED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.KILLED, RunStatus.CRASHED)


def _statuses(given: str | Sequence[str] | None) -> tuple[RunStatus, ...]:
    if given is None:
        return ENDED
    names = [part.strip().lower() for part in (given.split(",") if isinstance(given, str) else given)]
    names = [name for name in names if name]
    if not names:
        raise InvalidArgumentError("status", "name at least one of " + ", ".join(s.value for s in ENDED))
    chosen = []
    for name in names:
        if name == RunStatus.RUNNING.value:
            raise InvalidArgumentError("status", "gc never deletes running runs (`runpoint rm --force` stops "
                                       "being careful, one run at a time)")
        if name not in {s.value for s in ENDED}:
            raise InvalidArgumentError("status", f"{name!r} is not a status: use " + ", ".join(s.value for s in ENDED))
        chosen.append(RunStatus(name))
    return tuple(dict.fromkeys(chosen))


@dataclass(frozen=True)
class GcRule:
    """What to delete: runs ended more than ``older_than_s`` seconds ago, with one of ``statuses``."""

    older_than_s: float
    statuses: tuple[RunStatus, ...] = ENDED
    keep_tags: tuple[str, ...] = ("keep",)
    keep_last: int | None = None
    project: str | None = None

    @classmethod
    def parse(cls, older_than: str, statuses: str | Sequence[str] | None = None, keep_tags: Iterable[str] = ("keep",),
              keep_last: int | None = None, project: str | None = None) -> "GcRule":
        """A rule from the command line's words; :class:`InvalidArgumentError` naming the bad one."""
        try:
            seconds = parse_duration(older_than)
        except ValueError as exc:
            raise InvalidArgumentError("older-than", str(exc)) from None
        if keep_last is not None and keep_last < 1:
            raise InvalidArgumentError("keep-last", f"must be at least 1, not {keep_last}")
        tags = tuple(tag.strip() for tag in keep_tags if tag.strip())
        return cls(seconds, _statuses(statuses), tags, keep_last, project)

    @classmethod
    def from_policy(cls, policy: "RetentionPolicy", project: str | None = None) -> "GcRule":
        """The rule of a config's ``experiment.retention`` (validated already)."""
        if policy.older_than is None:
            raise InvalidArgumentError("policy", "experiment.retention.older_than is not set: the config has no "
                                       "retention policy (e.g. older_than: 30d)")
        return cls.parse(policy.older_than, policy.statuses, policy.keep_tags, policy.keep_last, project)

    def describe(self) -> str:
        statuses = ",".join(s.value for s in self.statuses)
        return f"runs ended more than {format_duration(self.older_than_s)} ago ({statuses})"


@dataclass
class GcEntry:
    """One listed run: whether gc deletes it, and why."""

    run: RunRecord
    age_s: float
    delete: bool
    reason: str
    usage: Usage = field(default_factory=Usage)
    points: int = 0  # metric points in the store

    def to_dict(self) -> dict[str, Any]:
        run = record_dict(self.run)
        return {"id": self.run.id, "project": self.run.project, "name": self.run.name, "status": run["status"],
                "ended": run["ended"], "age_s": round(self.age_s, 1), "delete": self.delete, "reason": self.reason,
                "points": self.points, "bytes": self.usage.to_dict()}


@dataclass
class GcPlan:
    """The runs a gc would delete and those it keeps, newest first."""

    rule: GcRule
    entries: list[GcEntry] = field(default_factory=list)

    @property
    def to_delete(self) -> list[GcEntry]:
        return [entry for entry in self.entries if entry.delete]

    @property
    def kept(self) -> list[GcEntry]:
        return [entry for entry in self.entries if not entry.delete]

    def bytes_to_free(self) -> Usage:
        total = Usage()
        for entry in self.to_delete:
            total.add(entry.usage)
        return total


def not_local(location: str) -> StoreError:
    """The refusal of a store URL: gc and du need the run files, which live beside a local root's store."""
    return StoreError(f"{without_credentials(location)} is not a local root: runpoint gc and du work on a root "
                      "directory, where the run files are (docs/retention.md says why and what to do on a team "
                      "server)", without_credentials(location))


def local_root(store: Store) -> Path:
    """The directory of a local root's store; refuses a store URL (see ``docs/retention.md``)."""
    from ..store.sqlite.store import SQLiteStore

    if not isinstance(store, SQLiteStore):
        raise not_local(store.location)
    return Path(store.location).parent.resolve()


def registered_reason(store: Store, run_id: str) -> str | None:
    """``"registered model m:1, m:2"`` when model versions came from the run, else None."""
    registry = model_registry(store)
    if registry is None:  # fail closed: a store that cannot tell might hold registered versions
        raise StoreError(f"the store at {store.location} cannot list registered models, so gc cannot tell "
                         "which runs are protected", store.location)
    versions = registry.versions_of_run(run_id)
    if not versions:
        return None
    return "registered model " + ", ".join(f"{v.name}:{v.version}" for v in versions)


def _verdict(store: Store, rule: GcRule, run: RunRecord, age: float, newest: set[str]) -> tuple[bool, str] | None:
    """(delete, reason) for a run gc lists, None for a run it does not look at."""
    if run.status is RunStatus.RUNNING:
        return (False, f"still running (pid {run.pid} on {run.host})") if age > rule.older_than_s else None
    if run.status not in rule.statuses or age <= rule.older_than_s:
        return None
    tags = [tag for tag in run.tags if tag in rule.keep_tags]
    if tags:
        return False, f"tagged {tags[0]}"
    registered = registered_reason(store, run.id)
    if registered:
        return False, registered
    if run.id in newest:
        return False, f"one of the newest {rule.keep_last} of project {run.project}"
    return True, f"older than {format_duration(rule.older_than_s)}"


def _newest(runs: list[RunRecord], keep_last: int | None) -> set[str]:
    if keep_last is None:
        return set()
    by_project: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_project[run.project].append(run)
    return {run.id for members in by_project.values()
            for run in sorted(members, key=lambda r: (r.created_at, r.id), reverse=True)[:keep_last]}


def plan_gc(store: Store, rule: GcRule, now: float | None = None) -> GcPlan:
    """Every run the rule looks at, with its verdict and its bytes; nothing is changed but crashed runs reaped."""
    root = local_root(store)
    now = time.time() if now is None else now
    runs = list_runs(store, project=rule.project)
    newest = _newest(runs, rule.keep_last)
    plan = GcPlan(rule)
    for run in runs:
        end = run.created_at if run.status is RunStatus.RUNNING else (run.ended_at or run.heartbeat_at)
        verdict = _verdict(store, rule, run, now - end, newest)
        if verdict is None:
            continue
        try:
            directory = run_dir(store, run)
        except StoreError:
            directory, verdict = root / "-", (False, f"its recorded directory {run.dir!r} leaves the root")
        steps = registered_steps(store, run.id)
        points = sum(stats.count for stats in store.metric_stats(run.id).values())
        plan.entries.append(GcEntry(run, now - end, verdict[0], verdict[1], run_usage(directory, steps), points))
    return plan
