"""The JSON bodies of the store API, as pydantic models so that the OpenAPI schema documents them.

Batches are not here: they travel as msgpack (or JSON) decoded by :mod:`runpoint.store.wire`.
Integers are bounded to 64 bits, so a client's huge number is a 422, never a database error.

Example::

    body = CreateRunIn.model_validate({"run": {...}, "params": {"lr": 0.1}})
    store.create_run(body.record(), body.params, body.meta)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..store.records import (
    CheckpointRecord,
    Condition,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
)

Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Text = Annotated[str, Field(max_length=100_000)]
Name = Annotated[str, Field(min_length=1, max_length=512)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunIn(_Body):
    """A run to create; ``dir`` is ignored (the server records ``<project>/<id>``)."""

    id: Name
    project: Name
    name: Text
    status: RunStatus = RunStatus.RUNNING
    created_at: float
    heartbeat_at: float
    dir: str | None = None
    ended_at: float | None = None
    notes: Text = ""
    tags: list[Name] = []
    group: Text | None = None
    config_hash: Text | None = None
    host: Text | None = None
    pid: Int64 | None = None
    resume_count: Int64 = 0
    error: Text | None = None

    def record(self) -> RunRecord:
        fields = self.model_dump()
        fields["dir"] = f"{self.project}/{self.id}"
        fields["tags"] = tuple(self.tags)
        return RunRecord(**fields)


class CreateRunIn(_Body):
    run: RunIn
    params: dict[Name, Any] | None = None
    meta: dict[Name, Any] | None = None


class StatusIn(_Body):
    """A status change; with ``expect`` and/or ``heartbeat_before`` a compare-and-set."""

    status: RunStatus
    error: Text | None = None
    ended_at: float | None = None
    expect: list[RunStatus] | None = None
    heartbeat_before: float | None = None


class ReopenIn(_Body):
    host: Text
    pid: Int64
    now: float


class RankIn(_Body):
    """One rank's row; ``reset`` drops the run's other rank rows first (a new attempt)."""

    host: Text | None = None
    pid: Int64 | None = None
    started_at: float
    heartbeat_at: float
    status: RunStatus = RunStatus.RUNNING
    error: Text | None = None
    ended_at: float | None = None
    job: Text | None = None
    reset: bool = False

    def record(self, run_id: str, rank: int) -> RankRecord:
        fields = self.model_dump(exclude={"reset"})
        return RankRecord(run_id=run_id, rank=rank, **fields)


class RankStatusIn(_Body):
    status: RunStatus
    error: Text | None = None
    ended_at: float | None = None


class TruncateIn(_Body):
    after_step: Int64


class CheckpointIn(_Body):
    """A checkpoint of the run named in the path."""

    step: Int64
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    bytes: Int64
    created_at: float
    metrics: dict[Name, float] = {}
    is_best: bool = False
    hash: Text | None = None
    deleted_at: float | None = None

    def record(self, run_id: str) -> CheckpointRecord:
        return CheckpointRecord(run_id=run_id, **self.model_dump())


class DeletedIn(_Body):
    deleted_at: float


class BestIn(_Body):
    step: Int64 | None


class ConditionIn(_Body):
    scope: Literal["params", "metrics", "summary"]
    key: Name
    op: Literal["<", "<=", ">", ">=", "=", "!="]
    value: bool | Int64 | float | Text | None


class QueryIn(_Body):
    """Which runs to list (:class:`~runpoint.store.records.RunQuery`); empty fields do not filter."""

    project: Name | None = None
    tags: list[Name] = []
    statuses: list[RunStatus] = []
    group: Text | None = None
    config_hash: Text | None = None
    conditions: list[ConditionIn] = []
    ids: list[Name] = []
    newest_first: bool = True
    limit: Annotated[int, Field(ge=0, le=2**31)] | None = None

    def query(self, project: str | None) -> RunQuery:
        return RunQuery(
            project=project, tags=tuple(self.tags), statuses=tuple(self.statuses), group=self.group,
            config_hash=self.config_hash,
            conditions=tuple(Condition(c.scope, c.key, c.op, c.value) for c in self.conditions),
            ids=tuple(self.ids), newest_first=self.newest_first, limit=self.limit,
        )
