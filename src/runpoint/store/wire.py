"""The store's values on the wire: what the server's store API and its client exchange.

A :class:`~runpoint.store.base.WriteBatch` travels as msgpack (``application/msgpack``):
a map whose metric series are three little-endian arrays each (int64 steps, float64
values, float64 times), so 10 000 points cost 240 KB and two ``frombytes`` calls, never a
Python float per point. The same map with lists instead of byte strings (and ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` for the floats JSON lacks) is accepted as JSON, which is
what the OpenAPI schema documents and the fuzz tests send.

Decoding never trusts the sender: every field is type-checked and bounded, and a bad one
raises :class:`~runpoint.errors.InvalidArgumentError` naming it (the server answers 400).

Example::

    body = encode_batch(WriteBatch(metrics={"loss": series}, sequence=7))
    assert decode_batch(body) == WriteBatch(metrics={"loss": series}, sequence=7)
"""

from __future__ import annotations

import base64
import json
import math
import posixpath
import sys
from array import array
from dataclasses import asdict
from typing import Any, Mapping

import msgpack

from ..errors import InvalidArgumentError
from .records import (
    AlertRecord,
    CheckpointRecord,
    MediaRecord,
    MetricSeries,
    MetricStats,
    RankRecord,
    RunRecord,
    RunStatus,
    WriteBatch,
)

MSGPACK = "application/msgpack"
MAX_KEY_LENGTH = 512
MAX_POINTS_PER_BATCH = 2_000_000
MAX_KEYS_PER_BATCH = 10_000
_LITTLE = sys.byteorder == "little"
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MEDIA_KINDS = ("image", "histogram", "text", "table")
ALERT_LEVELS = ("info", "warning", "error")
MAX_ALERTS_PER_BATCH = 10_000
MAX_ALERT_TITLE = 1_000
MAX_ALERT_TEXT = 100_000
_INT64 = (-(2**63), 2**63 - 1)


def _le(arr: array) -> bytes:
    if _LITTLE:
        return arr.tobytes()
    swapped = array(arr.typecode, arr)
    swapped.byteswap()
    return swapped.tobytes()


def _from_le(typecode: str, data: bytes, field: str) -> array:
    arr = array(typecode)
    if len(data) % arr.itemsize:
        raise InvalidArgumentError(field, f"{len(data)} bytes is not a whole number of {arr.itemsize}-byte values")
    arr.frombytes(data)
    if not _LITTLE:
        arr.byteswap()
    return arr


def series_to_wire(series: MetricSeries) -> list[bytes]:
    """A metric series as ``[steps, values, times]`` little-endian byte strings."""
    return [_le(series.steps), _le(series.values), _le(series.times)]


def encode_series(series: MetricSeries) -> bytes:
    """``msgpack.packb(series_to_wire(series))``, built with one copy of the arrays (a 1M-point read is 24 MB); always bin 32."""
    if not _LITTLE:
        return msgpack.packb(series_to_wire(series), use_bin_type=True)
    parts: list[Any] = [b"\x93"]  # an array of three
    for column in (series.steps, series.values, series.times):
        view = memoryview(column).cast("B")
        parts += [b"\xc6" + len(view).to_bytes(4, "big"), view]  # bin 32: length, then the bytes
    return b"".join(parts)


def series_from_wire(value: Any, field: str) -> MetricSeries:
    """A series from ``[steps, values, times]`` (byte strings, or lists in JSON, or a map with those names)."""
    if isinstance(value, Mapping):
        value = [value.get("steps"), value.get("values"), value.get("times")]
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise InvalidArgumentError(field, "must be [steps, values, times] (or a map with those three names)")
    steps = _column("q", value[0], f"{field}.steps")
    values = _column("d", value[1], f"{field}.values")
    times = _column("d", value[2], f"{field}.times")
    if not (len(steps) == len(values) == len(times)):
        raise InvalidArgumentError(field, f"steps, values and times differ in length ({len(steps)}, {len(values)}, {len(times)})")
    return MetricSeries(steps, values, times)


def _column(typecode: str, value: Any, field: str) -> array:
    if isinstance(value, (bytes, bytearray)):
        return _from_le(typecode, bytes(value), field)
    if not isinstance(value, list):
        raise InvalidArgumentError(field, "must be a byte string (msgpack) or a list of numbers")
    if typecode == "q":
        if not all(type(v) is int and _INT64[0] <= v <= _INT64[1] for v in value):
            raise InvalidArgumentError(field, "must hold 64-bit integers")
        return array("q", value)
    out = array("d")
    for v in value:
        if type(v) is str and v in _SPECIAL_FLOATS:
            out.append(_SPECIAL_FLOATS[v])
        elif type(v) in (int, float) and not isinstance(v, bool):
            try:
                out.append(float(v))
            except OverflowError:
                raise InvalidArgumentError(field, f"{v} does not fit a 64-bit float") from None
        else:
            raise InvalidArgumentError(field, f"must hold numbers (or \"NaN\", \"Infinity\", \"-Infinity\"), not {v!r:.40}")
    return out


def check_key(value: Any, field: str) -> str:
    """A metric, media, summary or param key: a non-empty string without control characters."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(field, "keys must be non-empty strings")
    if len(value) > MAX_KEY_LENGTH:
        raise InvalidArgumentError(field, f"a key is at most {MAX_KEY_LENGTH} characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgumentError(field, f"{value!r:.60} contains a control character")
    return value


def _number(value: Any, field: str, *, optional: bool = False, integer: bool = False) -> Any:
    if value is None and optional:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise InvalidArgumentError(field, f"must be {'an integer' if integer else 'a number'}")
    if integer and not _INT64[0] <= value <= _INT64[1]:
        raise InvalidArgumentError(field, "must fit in 64 bits")
    if not integer and not math.isfinite(value):
        raise InvalidArgumentError(field, "must be finite")
    return value


def _map(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(field, "must be a map of keys to values")
    return {check_key(k, f"{field} key"): v for k, v in value.items()}


def _json_text(values: Mapping[str, Any]) -> str | None:
    return json.dumps(values, sort_keys=True, default=str) if values else None


def _from_json_text(value: Any, field: str) -> Any:
    """A map given as JSON text (what the client sends) or as a map (JSON bodies)."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise InvalidArgumentError(field, "is not valid JSON text") from None


def _strings(value: Any, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(field, "must be a list of strings")
    return tuple(check_key(v, field) for v in value)


# -- batches ---------------------------------------------------------------------------


def batch_to_wire(batch: WriteBatch) -> dict[str, Any]:
    return {
        "sequence": batch.sequence, "rank": batch.rank, "heartbeat_at": batch.heartbeat_at,
        # params and summary travel as the JSON text the stores keep: any int, NaN, str() of the rest
        "tags": list(batch.tags), "params": _json_text(batch.params), "summary": _json_text(batch.summary),
        "summary_deleted": list(batch.summary_deleted),
        "metrics": {key: series_to_wire(s) for key, s in batch.metrics.items()},
        "media": [media_to_wire(m) for m in batch.media],
        "alerts": [alert_to_wire(a) for a in batch.alerts],
    }


def encode_batch(batch: WriteBatch) -> bytes:
    """``batch`` as the msgpack body of ``POST /api/store/runs/{id}/batches``."""
    return msgpack.packb(batch_to_wire(batch), use_bin_type=True)


def decode_batch(body: bytes) -> WriteBatch:
    """The batch in a msgpack body; InvalidArgumentError for anything malformed."""
    try:
        value = msgpack.unpackb(body, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several types for bad input
        raise InvalidArgumentError("body", f"is not valid msgpack ({type(exc).__name__})") from None
    return batch_from_wire(value)


def batch_from_wire(value: Any) -> WriteBatch:  # long: one check per field of a batch
    """A batch from its decoded map (msgpack, or JSON with lists for the series)."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError("body", "must be a map (a write batch)")
    unknown = set(value) - {"sequence", "rank", "heartbeat_at", "tags", "params", "summary", "summary_deleted",
                            "metrics", "media", "alerts"}
    if unknown:
        raise InvalidArgumentError("body", f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    metrics_in = _map(value.get("metrics"), "metrics")
    if len(metrics_in) > MAX_KEYS_PER_BATCH:
        raise InvalidArgumentError("metrics", f"at most {MAX_KEYS_PER_BATCH} keys per batch")
    metrics = {key: series_from_wire(s, f"metrics[{key!r}]") for key, s in metrics_in.items()}
    if sum(len(s) for s in metrics.values()) > MAX_POINTS_PER_BATCH:
        raise InvalidArgumentError("metrics", f"at most {MAX_POINTS_PER_BATCH} points per batch: split it")
    media = value.get("media") or []
    if not isinstance(media, list):
        raise InvalidArgumentError("media", "must be a list of media records")
    alerts = value.get("alerts") or []
    if not isinstance(alerts, list) or len(alerts) > MAX_ALERTS_PER_BATCH:
        raise InvalidArgumentError("alerts", f"must be a list of at most {MAX_ALERTS_PER_BATCH} alerts")
    rank = _number(value.get("rank"), "rank", optional=True, integer=True)
    if rank is not None and not 0 <= rank < 1 << 16:
        raise InvalidArgumentError("rank", "must be between 0 and 65535")
    return WriteBatch(
        metrics=metrics,
        params=_map(_from_json_text(value.get("params"), "params"), "params"),
        tags=_strings(value.get("tags"), "tags"),
        summary=_map(_from_json_text(value.get("summary"), "summary"), "summary"),
        summary_deleted=_strings(value.get("summary_deleted"), "summary_deleted"),
        heartbeat_at=_number(value.get("heartbeat_at"), "heartbeat_at", optional=True),
        media=[media_from_wire(m, f"media[{i}]") for i, m in enumerate(media)],
        sequence=_number(value.get("sequence"), "sequence", optional=True, integer=True),
        rank=rank,
        alerts=[alert_from_wire(a, f"alerts[{i}]") for i, a in enumerate(alerts)],
    )


# -- alerts ---------------------------------------------------------------------------


def alert_to_wire(record: AlertRecord) -> dict[str, Any]:
    """An alert as a map; ``run_id`` travels too (a batch's alerts take the batch's run)."""
    return asdict(record)


def _text(value: Any, field: str, limit: int, *, empty: bool) -> str:
    if not isinstance(value, str) or (not empty and not value) or len(value) > limit:
        raise InvalidArgumentError(field, f"must be a {'' if empty else 'non-empty '}string of at most {limit} characters")
    return value


def alert_from_wire(value: Any, field: str, run_id: str = "") -> AlertRecord:
    """An alert from its map, every field checked; ``run_id`` when the map has none."""
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(field, "must be a map")
    unknown = set(value) - {"run_id", "time", "level", "kind", "title", "text", "step", "key", "id"}
    if unknown:
        raise InvalidArgumentError(field, f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    level = value.get("level")
    if level not in ALERT_LEVELS:
        raise InvalidArgumentError(f"{field}.level", f"must be one of {', '.join(ALERT_LEVELS)}")
    key = value.get("key")
    return AlertRecord(
        run_id=_text(value.get("run_id", run_id) or run_id, f"{field}.run_id", MAX_KEY_LENGTH, empty=True),
        time=_number(value.get("time"), f"{field}.time"), level=level,
        kind=check_key(value.get("kind"), f"{field}.kind"),
        title=_text(value.get("title"), f"{field}.title", MAX_ALERT_TITLE, empty=False),
        text=_text(value.get("text", ""), f"{field}.text", MAX_ALERT_TEXT, empty=True),
        step=_number(value.get("step"), f"{field}.step", optional=True, integer=True),
        key=check_key(key, f"{field}.key") if key is not None else None,
        id=_number(value.get("id", 0), f"{field}.id", integer=True),
    )


# -- media -----------------------------------------------------------------------------


def media_to_wire(record: MediaRecord) -> dict[str, Any]:
    return {"key": record.key, "step": record.step, "kind": record.kind, "time": record.time,
            "data": record.data, "path": record.path, "file": record.file}


def media_from_wire(value: Any, field: str) -> MediaRecord:
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(field, "must be a map")
    kind = value.get("kind")
    if kind not in _MEDIA_KINDS:
        raise InvalidArgumentError(f"{field}.kind", f"must be one of {', '.join(_MEDIA_KINDS)}")
    file = value.get("file")
    if isinstance(file, str):  # JSON: base64
        try:
            file = base64.b64decode(file, validate=True)
        except ValueError:
            raise InvalidArgumentError(f"{field}.file", "must be base64 in JSON") from None
    if file is not None and not isinstance(file, (bytes, bytearray)):
        raise InvalidArgumentError(f"{field}.file", "must be bytes")
    path = value.get("path")
    if path is not None:
        check_relative_path(path, f"{field}.path")
    data = value.get("data") or {}
    if not isinstance(data, Mapping):
        raise InvalidArgumentError(f"{field}.data", "must be a map")
    return MediaRecord(
        key=check_key(value.get("key"), f"{field}.key"),
        step=_number(value.get("step"), f"{field}.step", integer=True),
        kind=kind, time=_number(value.get("time"), f"{field}.time"),
        data=dict(data), path=path, file=bytes(file) if file is not None else None,
    )


def check_relative_path(value: Any, field: str) -> str:
    """A path inside a run's directory: relative, ``/``-separated, no ``..``, no empty or control parts."""
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise InvalidArgumentError(field, "must be a relative path of 1 to 1024 characters")
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgumentError(field, f"{value!r:.80} must be a relative path with no '.', '..' or empty parts")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgumentError(field, "contains a control character")
    return value


def media_path_leaves(path: str | None) -> bool:
    """True when a media record's ``path`` is not inside the run's ``media/`` (every backend refuses it)."""
    if path is None:
        return False
    normal = posixpath.normpath(path.replace("\\", "/"))
    return path.startswith(("/", "\\")) or not normal.startswith("media/") or ".." in normal.split("/")


# -- records ---------------------------------------------------------------------------


def run_to_wire(run: RunRecord) -> dict[str, Any]:
    out = asdict(run)
    out["status"] = run.status.value
    out["tags"] = list(run.tags)
    return out


def run_from_wire(value: Mapping[str, Any]) -> RunRecord:
    fields = dict(value)
    fields["status"] = RunStatus(fields["status"])
    fields["tags"] = tuple(fields.get("tags") or ())
    return RunRecord(**fields)


def rank_to_wire(rank: RankRecord) -> dict[str, Any]:
    out = asdict(rank)
    out["status"] = rank.status.value
    return out


def rank_from_wire(value: Mapping[str, Any]) -> RankRecord:
    fields = dict(value)
    fields["status"] = RunStatus(fields.get("status", "running"))
    return RankRecord(**fields)


def stats_to_wire(stats: MetricStats) -> dict[str, Any]:
    return asdict(stats)


def stats_from_wire(value: Mapping[str, Any]) -> MetricStats:
    return MetricStats(**value)


def checkpoint_to_wire(record: CheckpointRecord) -> dict[str, Any]:
    return asdict(record)


def checkpoint_from_wire(value: Mapping[str, Any]) -> CheckpointRecord:
    return CheckpointRecord(**value)
