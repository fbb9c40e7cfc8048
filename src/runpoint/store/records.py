"""The value objects a store takes and gives: runs, metric points, media, checkpoints, batches, queries.

They hold data and no I/O; the protocols that move them are in :mod:`runpoint.store.base`,
which re-exports every name here (as does :mod:`runpoint.store`), so
``from runpoint.store.base import RunRecord`` keeps working.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Iterable, Literal, Sequence


class RunStatus(StrEnum):
    """Where a run is in its life.

    ``running`` ends in exactly one of the others. ``killed`` means SIGINT or SIGTERM;
    ``crashed`` is set by a reader that finds the run's process gone or its heartbeat
    stale.
    """

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    KILLED = "killed"
    CRASHED = "crashed"

    @property
    def is_final(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class RunRecord:
    """One run as the store knows it. Times are Unix seconds."""

    id: str
    project: str
    name: str
    status: RunStatus
    created_at: float
    heartbeat_at: float
    dir: str  # relative to the root: "<project>/<run id>"
    ended_at: float | None = None
    notes: str = ""
    tags: tuple[str, ...] = ()
    group: str | None = None
    config_hash: str | None = None
    host: str | None = None
    pid: int | None = None
    resume_count: int = 0
    error: str | None = None

    @property
    def duration(self) -> float:
        """Seconds from creation to the end, or to the last heartbeat while running."""
        end = self.ended_at if self.ended_at is not None else self.heartbeat_at
        return max(0.0, end - self.created_at)


@dataclass(frozen=True)
class RankRecord:
    """One process (rank) of a multi-rank job recording a run, as the store knows it.

    A single-process run has none. ``job`` tells attempts apart (torchrun's job id and
    restart count); ``status`` is the rank's own outcome, not the run's.
    """

    run_id: str
    rank: int
    host: str | None
    pid: int | None
    started_at: float
    heartbeat_at: float
    status: RunStatus = RunStatus.RUNNING
    error: str | None = None
    ended_at: float | None = None
    job: str | None = None


class MetricSeries:
    """Points of one metric, columnar: int64 steps, float64 values, float64 wall times.

    The arrays are :class:`array.array` so the core needs no numpy; ``to_numpy()``
    converts without copying.
    """

    __slots__ = ("steps", "values", "times")

    def __init__(
        self,
        steps: array | None = None,
        values: array | None = None,
        times: array | None = None,
    ) -> None:
        self.steps = steps if steps is not None else array("q")
        self.values = values if values is not None else array("d")
        self.times = times if times is not None else array("d")
        if not (len(self.steps) == len(self.values) == len(self.times)):
            raise ValueError("steps, values and times must have the same length")

    def __len__(self) -> int:
        return len(self.steps)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricSeries):
            return NotImplemented
        return (
            self.steps == other.steps
            and self.times == other.times
            and self.values.tobytes() == other.values.tobytes()  # NaN == NaN, bit for bit
        )

    def __repr__(self) -> str:
        return f"MetricSeries({len(self)} points)"

    def append(self, step: int, value: float, time: float) -> None:
        self.steps.append(step)
        self.values.append(value)
        self.times.append(time)

    def extend(self, other: "MetricSeries") -> None:
        self.steps.extend(other.steps)
        self.values.extend(other.values)
        self.times.extend(other.times)

    def to_numpy(self) -> tuple[Any, Any, Any]:
        """``(steps, values, times)`` as numpy arrays sharing this object's memory."""
        import numpy as np

        return (
            np.frombuffer(self.steps, dtype=np.int64),
            np.frombuffer(self.values, dtype=np.float64),
            np.frombuffer(self.times, dtype=np.float64),
        )

    def points(self) -> Iterable[tuple[int, float, float]]:
        return zip(self.steps, self.values, self.times)


@dataclass(frozen=True)
class MetricStats:
    """Aggregates of one metric, kept up to date as points arrive.

    ``last`` is the most recently logged value; ``min``/``max`` ignore NaN and are None
    when every value was NaN.
    """

    key: str
    count: int
    last: float
    last_step: int
    last_time: float
    min: float | None
    min_step: int | None
    max: float | None
    max_step: int | None


def nan_aware_extremes(values: Sequence[float]) -> tuple[int | None, int | None]:
    """Indices of the smallest and largest non-NaN values, or (None, None) if all are NaN."""
    if not values:
        return None, None
    total = sum(values)
    if total == total:  # no NaN (a NaN, or +inf and -inf together, would make the sum NaN)
        return values.index(min(values)), values.index(max(values))
    kept = [i for i, v in enumerate(values) if v == v]
    if not kept:
        return None, None
    return min(kept, key=values.__getitem__), max(kept, key=values.__getitem__)


MediaKind = Literal["image", "histogram", "text", "table"]


@dataclass(frozen=True)
class MediaRecord:
    """One logged media value (image, histogram, text or table) at one step.

    This is what the writer thread makes of an ``rp.Image``/``rp.Histogram``/``rp.Text``/
    ``rp.Table``, what the store keeps (a row of ``media`` plus a file under the run's
    ``media/``), what sinks mirror to other tools, and what the query layer reads back.

    Fields:
        key, step, time: as for metric points (``time`` in Unix seconds).
        kind: ``"image"``, ``"histogram"``, ``"text"`` or ``"table"``.
        data: JSON-ready facts, by kind (``caption`` in any of them when one was given):
            image: ``width``, ``height``, ``channels`` (1, 3 or 4), ``format`` ("png");
            histogram: ``edges`` (n + 1 floats), ``counts`` (n ints) over the finite
            values, and ``count``, ``nan``, ``inf``, ``min``, ``max``, ``mean``, ``std``;
            text: ``text``; table: ``columns`` (strings) and ``rows`` (lists of str,
            int, float, bool or None).
        path: the file, relative to the run directory (``media/<key>/<step>.png``), for
            kinds that have one (images); None otherwise.
        file: the file's bytes while the record travels from the writer to the store and
            sinks; None in records read back from a store (open ``path`` instead).

    Example::

        for record in query.read_media(store, run.id, "val/samples"):
            print(record.step, record.data["width"], run_dir / record.path)
    """

    key: str
    step: int
    kind: MediaKind
    time: float
    data: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    file: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class MediaKey:
    """One media key of a run: its kind and which steps have a value."""

    key: str
    kind: MediaKind
    count: int
    first_step: int
    last_step: int


AlertLevel = Literal["info", "warning", "error"]


@dataclass(frozen=True)
class AlertRecord:
    """One alert of a run: a detector's finding (``kind`` names it) or ``run.alert`` (kind ``user``).

    ``id`` is given by the store (0 before); ``key`` is the metric it is about, if any.
    """

    run_id: str
    time: float
    level: AlertLevel
    kind: str
    title: str
    text: str = ""
    step: int | None = None
    key: str | None = None
    id: int = 0


@dataclass
class WriteBatch:
    """Everything one flush of a run's writer sends to the store, applied atomically.

    ``sequence`` is the batch's idempotency key within its run: a number the writer
    assigns, distinct for each batch of the run. A store that has applied a batch with
    the same run and sequence skips it whole (the second ``write`` returns as if it had
    applied it), so a writer may retry a batch whose first try's outcome it never
    learned (a timeout, a lost reply) without storing its points twice. The key is
    recorded in the same transaction as the batch: a batch that failed is not recorded
    and its retry applies it. None (the default) means no key: every ``write`` applies
    the batch, as before keys existed.
    """

    metrics: dict[str, MetricSeries] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    summary_deleted: tuple[str, ...] = ()
    heartbeat_at: float | None = None
    media: list[MediaRecord] = field(default_factory=list)
    sequence: int | None = None
    rank: int | None = None
    alerts: list[AlertRecord] = field(default_factory=list)

    def is_empty(self) -> bool:
        return not (
            self.metrics or self.params or self.tags or self.summary or self.summary_deleted or self.media
            or self.alerts
        ) and self.heartbeat_at is None


Operator = Literal["<", "<=", ">", ">=", "=", "!="]
ConditionScope = Literal["params", "metrics", "summary"]


@dataclass(frozen=True)
class Condition:
    """``<scope>.<key> <op> <value>``; for metrics the value compared is the last one."""

    scope: ConditionScope
    key: str
    op: Operator
    value: float | str | bool | None

    def __str__(self) -> str:
        return f"{self.scope}.{self.key} {self.op} {self.value!r}"


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list. Empty fields do not filter."""

    project: str | None = None
    tags: tuple[str, ...] = ()  # every tag must be present
    statuses: tuple[RunStatus, ...] = ()
    group: str | None = None
    config_hash: str | None = None  # a prefix is enough
    conditions: tuple[Condition, ...] = ()
    ids: tuple[str, ...] = ()
    newest_first: bool = True
    limit: int | None = None


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint as the registry knows it. Times are Unix seconds.

    ``path`` is relative to the run directory for checkpoints inside it, otherwise an
    absolute path or a URL; ``hash`` is the digest of the checkpoint's manifest.
    """

    run_id: str
    step: int
    path: str
    bytes: int
    created_at: float
    metrics: dict[str, float] = field(default_factory=dict)
    is_best: bool = False
    hash: str | None = None
    deleted_at: float | None = None
