"""The sink contract: what a mirror of a run (TensorBoard, MLflow, W&B...) receives.

runpoint's own store is the source of truth; a sink gets a copy of what the run records
and forwards it to another tool. The contract is three calls, always made on the sink's
own thread (:mod:`runpoint.sinks._isolation` runs them, with timeouts and retries, so a
sink never sees the training loop and a slow or broken one cannot stall it):

- ``start(run)`` once: open the external run with the full config; return what
  identifies it (ids, links, directories). runpoint saves that in the run directory's
  ``external.json``, and hands it back as ``run.previous`` when the run is resumed, so a
  sink can continue the same external run.
- ``write(batch)`` for what the run recorded since the last call: scalar points with
  their steps and wall times, new params and tags, summary values.
- ``finish(status)`` once, with the run's final status.

Two optional calls: ``rewind(step)`` when the run resumes from a checkpoint of ``step``
and forgets the points its stopped attempt logged after it (the sink hides them in the
tool, as runpoint's store does; it may return new ids for ``external.json``), and
``abort(status)`` when runpoint gives up on the sink (hung, failing, or not done within
``finish_timeout``): end the external run as best it can and send nothing more. ``abort``
may run on another thread while a call into the sink hangs.

Calls may be retried after an exception, so ``start`` and ``write`` should tolerate
being called again with the same arguments. A sink object serves one run; one that
carries per-run state and may be passed to several runs (a sweep) defines
``for_run()``, returning a fresh object with the same settings for each run.

Example, a sink that prints::

    class PrintSink:
        name = "print"

        def start(self, run):
            print("start", run.id, run.config)
            return {}

        def write(self, batch):
            for step, wall, values in batch.rows():
                print(step, values)

        def finish(self, status):
            print("finished", status)

    rp.init(project="p", sinks=[PrintSink()])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

from ..store.base import MetricSeries, WriteBatch

__all__ = ["Sink", "SinkBatch", "SinkOptions", "SinkRun", "as_markdown_table", "media_file"]


@dataclass(frozen=True)
class SinkOptions:
    """How runpoint isolates one sink from the training loop.

    Attributes:
        call_timeout: seconds a ``start`` or ``write`` may take; one that takes longer is
            considered hung and the sink is disabled (its thread is abandoned).
        finish_timeout: seconds ``run.finish()`` waits for the sink to send what is queued
            and close; after that the run finishes anyway and the sink is recorded as
            timed out.
        retries: how many times a failed call is tried again before it counts as a failure.
        backoff: seconds before the first retry; doubled for each further one, at most 10 s.
        max_failures: failures in a row after which the sink is disabled.
        max_pending_points: points that may wait for a slow sink; beyond that new points
            are dropped for that sink (never for runpoint's store) and counted.
        max_pending_media: media values (images...) that may wait for a slow sink; beyond
            that new ones are dropped for that sink and counted.
        progress_interval: seconds between updates of ``external.json`` while the sink works.
    """

    call_timeout: float = 60.0
    finish_timeout: float = 30.0
    retries: int = 3
    backoff: float = 0.5
    max_failures: int = 3
    max_pending_points: int = 2_000_000
    max_pending_media: int = 10_000
    progress_interval: float = 2.0

    def __post_init__(self) -> None:
        for name in ("call_timeout", "finish_timeout", "backoff", "progress_interval"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"SinkOptions.{name} must be >= 0")
        if self.retries < 0 or self.max_failures < 1 or self.max_pending_points < 1 or self.max_pending_media < 0:
            raise ValueError(
                "SinkOptions: retries >= 0, max_failures >= 1, max_pending_points >= 1 and max_pending_media >= 0"
            )


@dataclass(frozen=True)
class SinkRun:
    """The run a sink mirrors, as it is when the sink starts.

    ``config`` is the full nested config with secrets already masked; ``previous`` is
    what this sink returned from ``start`` on an earlier attempt of the same run (empty
    for a new run).
    """

    id: str
    project: str
    name: str
    dir: Path
    config: Mapping[str, Any]
    tags: tuple[str, ...] = ()
    notes: str = ""
    group: str | None = None
    resume_count: int = 0
    previous: Mapping[str, Any] = field(default_factory=dict)

    @property
    def resumed(self) -> bool:
        return self.resume_count > 0


@dataclass
class SinkBatch:
    """What a run recorded between two ``write`` calls.

    ``metrics`` maps keys to their points (steps, values, wall times) in the order they
    were logged; ``params`` holds flattened params added while running; ``summary`` the
    summary values set (``summary_deleted`` the ones removed); ``media`` the images,
    histograms, texts and tables logged, as the store's media records (``key``,
    ``step``, ``kind``, ``time``, ``data``, ``path``, ``file``), for sinks that show them.
    """

    metrics: dict[str, MetricSeries] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    summary_deleted: tuple[str, ...] = ()
    media: list[Any] = field(default_factory=list)

    @classmethod
    def from_write(cls, batch: WriteBatch) -> "SinkBatch":
        """The part of a committed store batch that sinks see (not the heartbeat)."""
        return cls(
            metrics=dict(batch.metrics), params=dict(batch.params), tags=tuple(batch.tags),
            summary=dict(batch.summary), summary_deleted=tuple(batch.summary_deleted),
            media=list(getattr(batch, "media", ())),
        )

    @property
    def points(self) -> int:
        return sum(len(series) for series in self.metrics.values())

    def is_empty(self) -> bool:
        return not (self.metrics or self.params or self.tags or self.summary or self.summary_deleted or self.media)

    def without_metrics(self) -> "SinkBatch":
        """The batch without its points and media (what a sink that falls behind still gets)."""
        return SinkBatch(params=self.params, tags=self.tags, summary=self.summary, summary_deleted=self.summary_deleted)

    def merge(self, other: "SinkBatch") -> None:
        """Append ``other`` (recorded later) to this batch, in place."""
        merged = SinkBatch.concat([self, other])
        self.__dict__.update(merged.__dict__)

    @classmethod
    def concat(cls, batches: "list[SinkBatch]") -> "SinkBatch":
        """One batch holding ``batches`` in order; linear in their size (each point is copied once).

        The series of the batches are not modified: they may be shared with other sinks.
        """
        if len(batches) == 1:
            return batches[0]
        parts: dict[str, list[MetricSeries]] = {}
        merged = cls()
        tags: dict[str, None] = {}
        deleted: dict[str, None] = {}
        for batch in batches:
            for key, series in batch.metrics.items():
                parts.setdefault(key, []).append(series)
            merged.params.update(batch.params)
            merged.media.extend(batch.media)
            tags.update(dict.fromkeys(batch.tags))
            for key in batch.summary_deleted:
                merged.summary.pop(key, None)
                deleted[key] = None
            for key in batch.summary:
                deleted.pop(key, None)
            merged.summary.update(batch.summary)
        for key, series_list in parts.items():
            if len(series_list) == 1:
                merged.metrics[key] = series_list[0]
                continue
            combined = MetricSeries()
            for series in series_list:
                combined.extend(series)
            merged.metrics[key] = combined
        merged.tags, merged.summary_deleted = tuple(tags), tuple(deleted)
        return merged

    def rows(self) -> list[tuple[int, float, dict[str, float]]]:
        """The points regrouped as logged: ``(step, wall time, {key: value})`` per ``run.log`` call.

        One ``run.log`` call gives its keys the same step and wall time, so grouping by
        both recovers the calls; rows come in wall-time order.
        """
        grouped: dict[tuple[float, int, int], dict[str, float]] = {}
        for key, series in self.metrics.items():
            seen: dict[tuple[float, int], int] = {}
            for step, value, wall in zip(series.steps, series.values, series.times):
                # the same key twice at one step and instant (two calls within the clock's
                # resolution) goes in a second row rather than overwriting the first
                occurrence = seen[(wall, step)] = seen.get((wall, step), -1) + 1
                grouped.setdefault((wall, occurrence, step), {})[key] = value
        return [(step, wall, values) for (wall, _, step), values in sorted(grouped.items(), key=lambda item: item[0])]


@runtime_checkable
class Sink(Protocol):
    """Forwards a run to another tool. See the module docstring for the contract.

    ``name`` keys the sink's entry in ``external.json``. A sink may carry an ``options``
    attribute (:class:`SinkOptions`) to change how it is isolated, and a ``for_run()``
    method returning the object that serves one run (see the module docstring).
    """

    name: str

    def start(self, run: SinkRun) -> Mapping[str, Any]:
        """Open the external run; return its ids and links (JSON data) for ``external.json``."""

    def write(self, batch: SinkBatch) -> None:
        """Send what the run recorded since the last call."""

    def finish(self, status: str) -> None:
        """Close the external run; ``status`` is ``completed``, ``failed``, ``killed`` or ``crashed``."""



def media_file(record: Any, run_dir: Path) -> bytes | None:
    """The bytes of a media record's file (an image's PNG): carried with it, or read from the run directory."""
    data = getattr(record, "file", None)
    if data is not None:
        return bytes(data)
    path = getattr(record, "path", None)
    if not path:
        return None
    try:
        return (run_dir / path).read_bytes()
    except OSError:
        return None


def as_markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    """A media table as a markdown table, for tools that show text only."""
    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
