"""What the writer's queue holds besides logged points, and how drained points become a batch.

The queue holds ``(step, wall, values, deferred)`` tuples for logged points and, in between,
the operations defined here: :class:`Marker` (a flush waiting for what came before it),
:class:`RewindOp`, :class:`SummaryOp`, :class:`ParamsOp` and :class:`AlertOp`. :func:`to_columns` packs the
drained points column-wise per key, and :func:`resolve_deferred` reads deferred values
(device scalars, media) on the writer thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from array import array
from typing import Any, Callable

from ..store.base import AlertRecord, MediaRecord, MetricSeries, WriteBatch
from .values import is_media

logger = logging.getLogger("runpoint")


class Marker:
    """Put in the queue by :meth:`Writer.flush`; set once everything before it is stored."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class RewindOp(Marker):
    """Queued by :meth:`Writer.rewind`: once what came before is stored, drop points after a step."""

    __slots__ = ("after_step", "dropped", "announce")

    def __init__(self, after_step: int, announce: bool) -> None:
        super().__init__()
        self.after_step, self.dropped, self.announce = after_step, 0, announce


class SummaryOp:
    """Queued by ``set_summary`` / ``delete_summary``: one summary key set or removed."""

    __slots__ = ("key", "value", "delete")

    def __init__(self, key: str, value: Any = None, delete: bool = False) -> None:
        self.key, self.value, self.delete = key, value, delete

    def apply(self, batch: WriteBatch) -> None:
        if self.delete:
            batch.summary.pop(self.key, None)
            batch.summary_deleted = (*batch.summary_deleted, self.key)
        else:
            batch.summary[self.key] = self.value
            batch.summary_deleted = tuple(k for k in batch.summary_deleted if k != self.key)


class ParamsOp:
    """Queued by ``add_params``: searchable params and tags to add."""

    __slots__ = ("params", "tags")

    def __init__(self, params: dict[str, Any], tags: tuple[str, ...]) -> None:
        self.params, self.tags = params, tags

    def apply(self, batch: WriteBatch) -> None:
        batch.params.update(self.params)
        batch.tags = (*batch.tags, *self.tags)


class AlertOp:
    """Queued by ``add_alert`` (``run.alert``): one alert, stored with the batch it lands in."""

    __slots__ = ("record",)

    def __init__(self, record: AlertRecord) -> None:
        self.record = record

    def apply(self, batch: WriteBatch) -> None:
        batch.alerts.append(self.record)


def to_columns(entries: list[tuple[Any, ...]]) -> tuple[dict[str, MetricSeries], int]:
    """Per key, the steps, values and times of the entries that logged it, in logged order.

    ``entries`` are ``(step, wall, values, ...)``; also returns how many points there are.

    Training loops log the same few key sets again and again (train keys every step, val
    keys now and then), so entries are grouped by key set and each group's columns are
    built with one list comprehension per key. A key that appears in several key sets is
    gathered across them in order. Arrays of one group are shared between its keys: the
    series are read-only from here on.
    """
    groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for entry in entries:
        keys = tuple(entry[2])
        group = groups.get(keys)
        if group is None:
            groups[keys] = [entry]
        else:
            group.append(entry)
    seen: dict[str, int] = {}
    for keys in groups:
        for key in keys:
            seen[key] = seen.get(key, 0) + 1
    columns: dict[str, MetricSeries] = {}
    for keys, group in groups.items():
        steps = array("q", [entry[0] for entry in group])
        times = array("d", [entry[1] for entry in group])
        for key in keys:
            if seen[key] == 1:
                columns[key] = MetricSeries(steps, array("d", [entry[2][key] for entry in group]), times)
            elif key not in columns:
                mine = [entry for entry in entries if key in entry[2]]
                columns[key] = MetricSeries(
                    array("q", [entry[0] for entry in mine]),
                    array("d", [entry[2][key] for entry in mine]),
                    array("d", [entry[1] for entry in mine]),
                )
    return columns, sum(len(keys) * len(group) for keys, group in groups.items())


def resolve_deferred(values: dict[str, Any], step: int, wall: float, media: list[MediaRecord]) -> dict[str, float]:
    """Read deferred scalars and encode media (into ``media``); scalars are returned."""
    resolved = {}
    for key, value in values.items():
        if type(value) is float or type(value) is int:
            resolved[key] = value
            continue
        if is_media(value):
            try:
                media.append(value.encode(key, step, wall))
            except Exception as exc:  # a bad image must not kill the writer or lose the scalars
                logger.warning("runpoint: could not encode %r at step %d: %s; it was not stored", key, step, exc)
            continue
        try:
            resolved[key] = value.resolve()
        except Exception as exc:  # a device error must not kill the writer
            logger.warning("runpoint: could not read the value of %r: %s; stored NaN", key, exc)
            resolved[key] = float("nan")
    return resolved


def redact_media(media: list[MediaRecord], redact: Callable[[str], str]) -> None:
    """Secrets out of the text that media carry (``rp.Text``, every caption), before anything stores them."""
    for record in media:
        data = record.data
        if record.kind == "text" and isinstance(data.get("text"), str):
            data["text"] = redact(data["text"])
        if isinstance(data.get("caption"), str):
            data["caption"] = redact(data["caption"])


def inspect_batch(inspectors: list[Callable[[WriteBatch], None]], batch: WriteBatch) -> None:
    """Show ``batch`` to each inspector (the alert detectors), which may add to it; a failing one is dropped."""
    for inspect in tuple(inspectors):
        try:
            inspect(batch)
        except Exception:  # a detector's bug must never stop the points being stored: drop it, once
            inspectors.remove(inspect)
            logging.getLogger("runpoint").exception(
                "runpoint: a batch inspector (alert detector) failed; it is switched off")


def redacted_alert(record: AlertRecord, redact: Callable[[str], str] | None) -> AlertRecord:
    """``record`` with secrets taken out of its title and text (the run's redaction), before it is stored or sent."""
    if redact is None:
        return record
    return dataclasses.replace(record, title=redact(record.title), text=redact(record.text))
