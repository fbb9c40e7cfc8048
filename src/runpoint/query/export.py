"""Writing a run's metrics out as CSV, JSON or Parquet.

CSV and Parquet are long tables, one row per point: ``key, step, value, time``. JSON is
one document: the run's record, config, summary and, per metric, its steps, values and
times as arrays. CSV and JSON need nothing beyond the standard library; Parquet needs
``pyarrow`` (the ``parquet`` extra).

Example::

    from runpoint import export, query
    store = query.open_root()
    export.export_run(store, query.resolve_run(store, "latest"), "csv", "metrics.csv")
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys
from pathlib import Path
from typing import IO, Iterator, Literal

from .._util.fs import atomic_path, require_parent_dir
from .._util.jsonable import dumps
from ..errors import InvalidArgumentError, RunpointError
from ..store import RunRecord, Store
from .runs import run_details

Format = Literal["csv", "json", "parquet"]
FORMATS: tuple[str, ...] = ("csv", "json", "parquet")


def _rows(store: Store, run_id: str) -> Iterator[tuple[str, int, float, float]]:
    for key in store.metric_keys(run_id):
        series = store.read_metric(run_id, key)
        for step, value, at in series.points():
            yield key, step, value, at


def _csv_value(value: float) -> str:
    return repr(value) if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def _write_csv(store: Store, run: RunRecord, handle: IO[str]) -> int:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["run_id", "key", "step", "value", "time"])
    count = 0
    for key, step, value, at in _rows(store, run.id):
        writer.writerow([run.id, key, step, _csv_value(value), repr(at)])
        count += 1
    return count


def _json_document(store: Store, run: RunRecord) -> tuple[str, int]:
    document = run_details(store, run)
    series = {}
    count = 0
    for key in store.metric_keys(run.id):
        points = store.read_metric(run.id, key)
        series[key] = {"steps": list(points.steps), "values": list(points.values), "times": list(points.times)}
        count += len(points)
    document["series"] = series
    return dumps(document) + "\n", count


def _write_parquet(store: Store, run: RunRecord, path: Path) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise RunpointError("Parquet export needs pyarrow: pip install 'runpoint[parquet]'") from None
    keys: list[str] = []
    steps: list[int] = []
    values: list[float] = []
    times: list[float] = []
    for key in store.metric_keys(run.id):
        series = store.read_metric(run.id, key)
        keys.extend([key] * len(series))
        steps.extend(series.steps)
        values.extend(series.values)
        times.extend(series.times)
    table = pa.table(
        {
            "run_id": pa.array([run.id] * len(keys), pa.string()),
            "key": pa.array(keys, pa.string()),
            "step": pa.array(steps, pa.int64()),
            "value": pa.array(values, pa.float64()),
            "time": pa.array(times, pa.float64()),
        }
    )
    pq.write_table(table, path)
    return len(keys)


def export_run(store: Store, run: RunRecord, fmt: str, out: str | os.PathLike[str] | None) -> tuple[str, int]:
    """Write ``run``'s metrics to ``out`` (``"-"``: stdout; None: ``<run id>.<fmt>``).

    Returns where it went and how many points were written.
    """
    if fmt not in FORMATS:
        raise InvalidArgumentError("format", f"{fmt!r} is not one of {', '.join(FORMATS)}")
    target = f"{run.id}.{fmt}" if out is None else os.fspath(out)
    if target == "-":
        if fmt == "parquet":
            raise InvalidArgumentError("out", "Parquet is binary; give a file name, not '-'")
        if fmt == "csv":
            return "<stdout>", _write_csv(store, run, sys.stdout)
        text, count = _json_document(store, run)
        sys.stdout.write(text)
        return "<stdout>", count
    path = Path(target)
    if path.is_dir():
        path = path / f"{run.id}.{fmt}"
    require_parent_dir(path)
    with atomic_path(path) as tmp:  # a unique name: two exports to one file never mix
        if fmt == "parquet":
            count = _write_parquet(store, run, tmp)
        elif fmt == "csv":
            with open(tmp, "w", encoding="utf-8", newline="") as handle:
                count = _write_csv(store, run, handle)
        else:
            text, count = _json_document(store, run)
            tmp.write_text(text, encoding="utf-8")
    return str(path), count


def csv_text(store: Store, run: RunRecord) -> str:
    """The CSV export as a string."""
    buffer = io.StringIO()
    _write_csv(store, run, buffer)
    return buffer.getvalue()
