"""A resumed run that restores its checkpoint drops what the stopped attempt logged after it.

Store level: ``truncate_metrics`` keeps exactly the points at or before a step, whatever
the chunking, and recomputes the stats. Run level: ``restore()`` in a resumed run rewinds
the run to the checkpoint's step, so the charts show one line.
"""

from __future__ import annotations

import math
import time
from array import array

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import runpoint as rp
from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch
from runpoint.store.sqlite import SQLiteStore

values = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan))
batches = st.lists(st.lists(st.tuples(st.integers(0, 300), values), min_size=1, max_size=700), min_size=1, max_size=8)


def _new_store(path) -> SQLiteStore:
    store = SQLiteStore(path)
    now = time.time()
    store.create_run(RunRecord(id="r", project="p", name="n", status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir="p/r"))
    return store


def _write(store: SQLiteStore, points: list[tuple[int, float]], offset: float) -> None:
    series = MetricSeries(array("q", [s for s, _ in points]), array("d", [v for _, v in points]),
                          array("d", [offset + i for i in range(len(points))]))
    store.write("r", WriteBatch(metrics={"k": series}))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(logged=batches, cut=st.integers(-1, 320), later=st.lists(st.tuples(st.integers(0, 400), values), max_size=50))
def test_truncate_keeps_exactly_the_points_up_to_the_step(tmp_path_factory, logged, cut, later) -> None:
    store = _new_store(tmp_path_factory.mktemp("t") / "runpoint.db")
    try:
        everything: list[tuple[int, float]] = []
        for index, points in enumerate(logged):
            _write(store, points, index * 1000.0)
            everything += points
        dropped = store.truncate_metrics("r", cut)
        kept = [(s, v) for s, v in everything if s <= cut]
        assert dropped == len(everything) - len(kept)
        series = store.read_metric("r", "k")
        assert list(zip(series.steps, series.values)) == kept or _same_with_nan(series, kept)
        stats = store.metric_stats("r").get("k")
        if not kept:
            assert stats is None and store.metric_keys("r") == []
        else:
            assert stats.count == len(kept) and stats.last_step == kept[-1][0]
            finite = [v for _, v in kept if not math.isnan(v)]
            assert stats.min == (min(finite) if finite else None) and stats.max == (max(finite) if finite else None)
        if later:  # writing after a truncation appends where it should
            _write(store, later, 99_000.0)
            series = store.read_metric("r", "k")
            assert _same_with_nan(series, kept + later)
            assert store.metric_stats("r")["k"].count == len(kept) + len(later)
    finally:
        store.close()


def _same_with_nan(series: MetricSeries, expected: list[tuple[int, float]]) -> bool:
    if series.steps.tolist() != [s for s, _ in expected]:
        return False
    return array("d", [v for _, v in expected]).tobytes() == series.values.tobytes()


def test_restore_in_a_resumed_run_rewinds_its_metrics_and_next_step(root, store_at) -> None:
    with rp.init(project="p", id="r1", root=root, console=False) as run:  # (test_exact_resume SIGKILLs it)
        ckpt = rp.CheckpointManager(run)
        for step in range(10):
            run.log({"loss": float(step), "note": rp.Text(f"step {step}")})
            if step == 5:
                ckpt.save(step, {"model_step": step})

    with rp.init(project="p", resume="r1", root=root, console=False) as resumed:
        assert resumed.step == 10
        state = {"model_step": None}
        assert rp.CheckpointManager(resumed).restore(state) == 6
        assert state == {"model_step": 5} and resumed.step == 6
        resumed.log({"loss": 60.0})
    loss = store_at().read_metric("r1", "loss")
    assert loss.steps.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert loss.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 60.0]
    from runpoint.store.sqlite.media import SQLiteMediaStore

    assert [r.step for r in SQLiteMediaStore(store_at()).read_media("r1", "note")] == [0, 1, 2, 3, 4, 5]


def test_restoring_in_a_new_run_or_another_runs_checkpoint_drops_nothing(root, store_at) -> None:
    with rp.init(project="p", id="a", root=root, console=False) as first:
        for step in range(4):
            first.log({"x": 1.0})
        rp.CheckpointManager(first).save(1, {"v": 1})
    with rp.init(project="p", id="b", root=root, console=False) as second:
        second.log({"x": 1.0}, step=7)
        warm = rp.CheckpointManager(second, directory=root / "p" / "a" / "checkpoints")
        assert warm.restore({"v": 0}) == 2
        assert second.step == 8
    assert store_at().read_metric("a", "x").steps.tolist() == [0, 1, 2, 3]
    assert store_at().read_metric("b", "x").steps.tolist() == [7]
