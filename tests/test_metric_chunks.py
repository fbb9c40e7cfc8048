"""Points packed into chunks read back exactly, whatever the pattern of flushes (property tests)."""

from __future__ import annotations

import math
import tempfile
from array import array
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch
from runpoint.store.chunks import CHUNK_POINTS, MERGE_AFTER
from runpoint.store.sqlite import SQLiteStore

values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(-(2**40), 2**40).map(float),
)
flush_sizes = st.lists(
    st.one_of(st.integers(1, 40), st.integers(CHUNK_POINTS - 50, CHUNK_POINTS + 50), st.integers(1, 3 * CHUNK_POINTS)),
    min_size=1, max_size=40,
)


def _new_store(directory: Path) -> SQLiteStore:
    store = SQLiteStore(directory / "runpoint.db")
    store.create_run(RunRecord(id="r", project="p", name="n", status=RunStatus.RUNNING, created_at=0.0,
                               heartbeat_at=0.0, dir="p/r"))
    return store


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=flush_sizes, seed_values=st.lists(values, min_size=1, max_size=64), reopen_at=st.integers(0, 40))
def test_any_flush_pattern_reads_back_bit_exact_with_bounded_rows(sizes, seed_values, reopen_at) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        store = _new_store(directory)
        expected = MetricSeries()
        step = 0
        for index, size in enumerate(sizes):
            if index == reopen_at:  # a new process (a resume) continues the same key
                store.close()
                store = SQLiteStore(directory / "runpoint.db")
            batch = MetricSeries()
            for _ in range(size):
                batch.append(step, seed_values[step % len(seed_values)], 1e9 + step * 0.25)
                step += 1
            expected.extend(batch)
            store.write("r", WriteBatch(metrics={"k": batch}))
        got = store.read_metric("r", "k")
        assert got.steps == expected.steps and got.times == expected.times
        assert got.values.tobytes() == expected.values.tobytes()  # NaN payloads included
        rows = store._conn().execute("SELECT n FROM metric_chunks WHERE run_id='r' AND key='k'").fetchall()
        small = [n for (n,) in rows if n < CHUNK_POINTS]
        assert all(n <= CHUNK_POINTS for (n,) in rows)
        assert len(small) <= MERGE_AFTER  # slow keys do not leave thousands of tiny rows
        stats = store.metric_stats("r")["k"]
        finite = [v for v in expected.values if not math.isnan(v)]
        assert stats.count == len(expected)
        assert stats.min == (min(finite) if finite else None)
        assert stats.max == (max(finite) if finite else None)
        assert stats.last_step == expected.steps[-1]
        store.close()


def test_a_slow_key_stays_compact(tmp_path) -> None:
    store = _new_store(tmp_path)
    for step in range(2000):  # one point per flush, the worst case
        store.write("r", WriteBatch(metrics={"k": MetricSeries(array("q", [step]), array("d", [1.0]), array("d", [0.0]))}))
    rows = store._conn().execute("SELECT count(*) FROM metric_chunks").fetchone()[0]
    assert rows <= MERGE_AFTER
    assert store.read_metric("r", "k").steps.tolist() == list(range(2000))
    store.close()


def test_a_numpy_still_being_imported_by_another_thread_is_not_used(monkeypatch) -> None:
    """A sink thread importing numpy must not break the writer's packing (it saw a half-made module)."""
    import importlib.machinery
    import sys
    import types

    from runpoint.store.chunks import to_rows

    half_imported = types.ModuleType("numpy")  # what sys.modules holds while numpy's __init__ runs
    half_imported.__spec__ = importlib.machinery.ModuleSpec("numpy", None)
    half_imported.__spec__._initializing = True
    monkeypatch.setitem(sys.modules, "numpy", half_imported)
    series = MetricSeries(array("q", range(100)), array("d", [float(100 - i) for i in range(100)]),
                          array("d", [float(i) for i in range(100)]))
    (row,) = to_rows(series, 0)
    assert (row.step_min, row.step_max, row.vmin, row.vmax, row.vmin_step, row.vmax_step) == (0, 99, 1.0, 100.0, 99, 0)
