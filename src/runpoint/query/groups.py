"""Runs grouped by config with chosen keys ignored (the seed, by default), and each group's statistics.

Runs whose flattened configs agree on every key but the ignored ones (``training.seed``,
``seed``...) are repetitions of one experiment: :func:`group_runs` puts them together and
gives, per metric, the mean ± std and 95% CI of their final and best values. A group is
named by a short hash of the config it shares (``cfg:1a2b3c4d``), stable across calls
with the same ignored keys, so it can be picked again (:mod:`runpoint.query.selectors`).

Example::

    grouped = group_runs(store, query.list_runs(store, project="digits"), metrics=["val/acc"])
    for group in grouped.groups:
        print(group.label, group.n, group.metrics["val/acc"].final.mean)
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping, Sequence

from ..errors import InvalidArgumentError
from ..store import RunRecord, Store
from .analysis import best_metrics, infer_mode
from .stats import Mode, Summary, summarize

DEFAULT_IGNORE: tuple[str, ...] = ("seed", "training.seed")  # training.seed: the config schema's seed
Which = Literal["final", "best"]


def is_ignored(key: str, ignore: Iterable[str]) -> bool:
    """Whether ``key`` matches one of ``ignore`` (exact keys or shell patterns such as ``*.seed``)."""
    return any(key == pattern or fnmatch.fnmatchcase(key, pattern) for pattern in ignore)


def _canonical(params: Mapping[str, Any], ignore: Iterable[str]) -> str:
    kept = {key: value for key, value in params.items() if not is_ignored(key, ignore)}
    return json.dumps(kept, sort_keys=True, default=str)


def group_label(params: Mapping[str, Any], ignore: Iterable[str] = DEFAULT_IGNORE) -> str:
    """``cfg:<8 hex>``: a short hash of the config without the ignored keys."""
    return "cfg:" + hashlib.sha256(_canonical(params, ignore).encode()).hexdigest()[:8]


def group_params(params: Mapping[str, Mapping[str, Any]], ignore: Iterable[str] = DEFAULT_IGNORE) -> dict[str, list[str]]:
    """Run ids (keys of ``params``) grouped by config without the ignored keys: label -> ids.

    Groups come sorted by label, ids in the order given.

    Example::

        group_params({"a": {"lr": 1, "seed": 0}, "b": {"lr": 1, "seed": 1}})  # {"cfg:...": ["a", "b"]}
    """
    ignore = tuple(ignore)
    found: dict[str, list[str]] = {}
    for run_id, values in params.items():
        found.setdefault(group_label(values, ignore), []).append(run_id)
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class GroupMetric:
    """One metric over a group's runs: final (last logged) and best values summarized."""

    key: str
    mode: Mode | None
    final: Summary
    best: Summary | None  # None when the direction is unknown
    missing: list[str] = field(default_factory=list)  # run ids without a finite value

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "mode": self.mode, "final": self.final.to_dict(),
                "best": self.best.to_dict() if self.best else None, "missing": self.missing}


@dataclass
class RunGroup:
    """Runs of one config (ignored keys aside): its shared config, the ignored values, its metrics."""

    label: str
    runs: list[RunRecord]
    params: dict[str, Any]
    ignored: dict[str, list[Any]]  # ignored key -> value per run (None: absent)
    metrics: dict[str, GroupMetric] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label, "n": self.n, "runs": [{"id": r.id, "name": r.name, "status": r.status.value} for r in self.runs],
            "params": self.params, "ignored": self.ignored,
            "metrics": {key: metric.to_dict() for key, metric in self.metrics.items()},
        }


@dataclass
class GroupedRuns:
    """Groups of runs, and the config keys that tell the groups apart (key -> value per group)."""

    groups: list[RunGroup]
    ignore: list[str]
    differing: dict[str, list[Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"ignore": self.ignore, "differing": self.differing, "groups": [g.to_dict() for g in self.groups]}


def group_runs(
    store: Store, runs: Sequence[RunRecord], *, ignore: Iterable[str] = DEFAULT_IGNORE,
    metrics: Sequence[str] | None = None, confidence: float = 0.95,
) -> GroupedRuns:
    """``runs`` grouped by config without ``ignore``, each metric of ``metrics`` summarized per group.

    ``metrics`` None: every metric with a known direction (``val/acc``, ``loss``...) that some run logged.
    """
    ignore = list(ignore)
    params = {run.id: store.get_params(run.id) for run in runs}
    by_id = {run.id: run for run in runs}
    stats = {run.id: store.metric_stats(run.id) for run in runs}
    modes = _modes(store, runs, metrics)
    groups = []
    for label, ids in group_params(params, ignore).items():
        members = [by_id[i] for i in ids]
        shared = {k: v for k, v in params[ids[0]].items() if not is_ignored(k, ignore)}
        ignored_keys = sorted({k for i in ids for k in params[i] if is_ignored(k, ignore)})
        group = RunGroup(label, members, shared, {k: [params[i].get(k) for i in ids] for k in ignored_keys})
        for key, mode in modes.items():
            group.metrics[key] = _group_metric(key, mode, [(i, stats[i].get(key)) for i in ids], confidence)
        groups.append(group)
    return GroupedRuns(groups, ignore, _differing([g.params for g in groups]))


def _modes(store: Store, runs: Sequence[RunRecord], metrics: Sequence[str] | None) -> dict[str, Mode | None]:
    declared: dict[str, Mode] = {}
    for run in runs:
        for best in best_metrics(store, run.id):
            if best.monitored:
                declared.setdefault(best.key, best.mode)
    if metrics is None:
        keys = sorted({key for run in runs for key in store.metric_keys(run.id)})
        return {key: declared.get(key) or infer_mode(key) for key in keys if declared.get(key) or infer_mode(key)}
    return {key: declared.get(key) or infer_mode(key) for key in metrics}


def _group_metric(key: str, mode: Mode | None, stats: list[tuple[str, Any]], confidence: float) -> GroupMetric:
    finals, bests, missing = [], [], []
    for run_id, stat in stats:
        if stat is None or not math.isfinite(stat.last):
            missing.append(run_id)
            continue
        finals.append(stat.last)
        best = stat.min if mode == "min" else stat.max
        if mode is not None and best is not None:
            bests.append(best)
    best = summarize(bests, confidence) if mode is not None else None
    return GroupMetric(key, mode, summarize(finals, confidence), best, missing)


def _differing(configs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    keys = sorted(set().union(*configs)) if configs else []
    differing = {}
    for key in keys:
        values = [json.dumps(c.get(key), sort_keys=True, default=str) if key in c else None for c in configs]
        if len(set(values)) > 1:
            differing[key] = [c.get(key) for c in configs]
    return differing


def metric_mode(store: Store, runs: Sequence[RunRecord], key: str, declared: str | None = None) -> Mode:
    """Whether lower or higher ``key`` is better: ``declared``, else ``run.monitor``'s mode, else the name."""
    if declared is not None:
        if declared not in ("min", "max"):
            raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {declared!r}")
        return declared  # type: ignore[return-value]
    mode = _modes(store, runs, [key])[key]
    if mode is None and not any(key in store.metric_keys(run.id) for run in runs):
        raise InvalidArgumentError("metric", f"none of the {len(runs)} run(s) logged a metric {key!r}")
    if mode is None:
        raise InvalidArgumentError(
            "mode", f"cannot tell whether higher or lower {key} is better; pass --mode max or --mode min")
    return mode


def metric_values(store: Store, runs: Sequence[RunRecord], key: str, which: Which = "final",
                  mode: Mode | None = None) -> list[float]:
    """The final (last logged) or best value of ``key`` in each run; refuses naming the runs without one."""
    if which not in ("final", "best"):
        raise InvalidArgumentError("which", f"must be 'final' or 'best', got {which!r}")
    if which == "best" and mode is None:
        raise InvalidArgumentError("mode", "the best value needs a direction (min or max)")
    values, lacking = [], []
    for run in runs:
        stat = store.metric_stats(run.id).get(key)
        value = None if stat is None else stat.last if which == "final" else stat.min if mode == "min" else stat.max
        if value is None or not math.isfinite(value):
            lacking.append(f"{run.id} ({run.name})")
        else:
            values.append(value)
    if lacking:
        shown = ", ".join(lacking[:10]) + (f" and {len(lacking) - 10} more" if len(lacking) > 10 else "")
        raise InvalidArgumentError("metric", f"{len(lacking)} run(s) have no finite {key}: {shown}")
    return values
