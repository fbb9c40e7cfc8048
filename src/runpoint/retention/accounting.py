"""Bytes per run and per project of a root, largest first: what ``runpoint du`` prints.

Example::

    rows = usage_by_run(store, project="digits")
    for row in rows:
        print(row.run.id, row.usage.total)
    print(total(rows).total)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import StoreError
from ..query import list_runs, run_dir
from ..store import RunRecord, Store
from ..store.registry import registered_steps
from .selection import local_root
from .usage import Usage, run_usage


@dataclass
class RunBytes:
    """One run's bytes by kind."""

    run: RunRecord
    usage: Usage

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.run.id, "project": self.run.project, "name": self.run.name,
                "status": self.run.status.value, **self.usage.to_dict()}


@dataclass
class ProjectBytes:
    """A project's bytes by kind, summed over its runs."""

    project: str
    runs: int
    usage: Usage

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "runs": self.runs, **self.usage.to_dict()}


def usage_by_run(store: Store, project: str | None = None) -> list[RunBytes]:
    """Every run's bytes (of ``project`` if given), largest first."""
    local_root(store)  # a store URL is refused with the reason
    rows = []
    for run in list_runs(store, project=project):
        try:
            directory = run_dir(store, run)
        except StoreError:
            continue  # a directory outside the root is not this root's bytes
        rows.append(RunBytes(run, run_usage(directory, registered_steps(store, run.id))))
    return sorted(rows, key=lambda row: (-row.usage.total, row.run.id))


def usage_by_project(rows: list[RunBytes]) -> list[ProjectBytes]:
    """The rows of :func:`usage_by_run` summed per project, largest first."""
    projects: dict[str, ProjectBytes] = {}
    for row in rows:
        entry = projects.setdefault(row.run.project, ProjectBytes(row.run.project, 0, Usage()))
        entry.runs += 1
        entry.usage.add(row.usage)
    return sorted(projects.values(), key=lambda p: (-p.usage.total, p.project))


def total(rows: list[RunBytes]) -> Usage:
    """The sum of ``rows``."""
    summed = Usage()
    for row in rows:
        summed.add(row.usage)
    return summed
