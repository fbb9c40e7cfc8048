"""Reading a metric from its ``offset``-th point on, touching only the chunks that hold them.

A replicator that has shipped the first ``offset`` points of a key asks for the rest; the
chunk rows carry their point counts, so the rows before the offset are never decoded.

Example::

    rest = read_metric_tail(store, run_id, "loss", offset=server_count)
"""

from __future__ import annotations

import sqlite3
from array import array

from ..base import MetricSeries
from ..chunks import unpack_into
from .store import SQLiteStore


def read_metric_tail(store: SQLiteStore, run_id: str, key: str, offset: int) -> MetricSeries:
    """The points of ``key`` after the first ``offset``, in logged order."""
    with store._translate_errors():
        conn = store._conn()
        conn.execute("BEGIN")  # one snapshot: a writer merging trailing chunks meanwhile renumbers them
        try:
            return _read_from(conn, run_id, key, offset)
        finally:
            conn.execute("COMMIT")


def _read_from(conn: sqlite3.Connection, run_id: str, key: str, offset: int) -> MetricSeries:
    rows = conn.execute(
        "SELECT seq, n FROM metric_chunks WHERE run_id = ? AND key = ? ORDER BY seq", (run_id, key)
    ).fetchall()
    skipped, first_seq = 0, None
    for seq, n in rows:
        if skipped + n > offset:
            first_seq = seq
            break
        skipped += n
    if first_seq is None:
        return MetricSeries()
    steps, values, times = array("q"), array("d"), array("d")
    for s, v, t in conn.execute(
        "SELECT steps, vals, times FROM metric_chunks WHERE run_id = ? AND key = ? AND seq >= ? ORDER BY seq",
        (run_id, key, first_seq),
    ):
        unpack_into(steps, s)
        unpack_into(values, v)
        unpack_into(times, t)
    cut = offset - skipped
    return MetricSeries(steps[cut:], values[cut:], times[cut:])
