"""The store's atomicity contract: a batch whose later statement fails leaves nothing stored.

The failure is real: a SQLite trigger aborts the heartbeat update, the last statement
of a batch, after its tags, params, summary and metric points have been written in
the same transaction.
"""

from __future__ import annotations

import sqlite3
from array import array

import pytest

from runpoint.errors import StoreError
from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch
from runpoint.store.sqlite import SQLiteStore

_FAIL_ON_HEARTBEAT = (
    "CREATE TRIGGER fail_on_heartbeat BEFORE UPDATE OF heartbeat_at ON runs"
    " BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
)


def _record(run_id: str) -> RunRecord:
    return RunRecord(id=run_id, project="p", name=run_id, status=RunStatus.RUNNING,
                     created_at=100.0, heartbeat_at=100.0, dir=f"p/{run_id}")


def _batch(sequence: int | None) -> WriteBatch:
    series = MetricSeries(array("q", [0, 1, 2]), array("d", [3.0, 2.0, 1.0]), array("d", [1.0, 2.0, 3.0]))
    return WriteBatch(metrics={"loss": series}, params={"lr": 0.1}, tags=("late",), summary={"best": 1.0},
                      heartbeat_at=200.0, sequence=sequence)


def _applied_sequences(path, run_id: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT sequence FROM applied_batches WHERE run_id = ?", (run_id,))]


@pytest.mark.parametrize("sequence", [None, 3])
def test_a_batch_whose_last_statement_fails_leaves_nothing_and_its_retry_applies_it(tmp_path, sequence) -> None:
    path = tmp_path / "runpoint.db"
    store = SQLiteStore(path)
    store.create_run(_record("a"), {"seed": 1})
    store.write("a", WriteBatch(metrics={"warmup": MetricSeries(array("q", [0]), array("d", [1.0]), array("d", [1.0]))}))
    with sqlite3.connect(path) as conn:
        conn.execute(_FAIL_ON_HEARTBEAT)

    with pytest.raises(StoreError, match="injected failure"):
        store.write("a", _batch(sequence))

    assert len(store.read_metric("a", "loss")) == 0
    assert store.metric_keys("a") == ["warmup"]
    assert store.get_params("a") == {"seed": 1}
    assert store.get_summary("a") == {}
    run = store.get_run("a")
    assert run.tags == () and run.heartbeat_at == 100.0
    assert _applied_sequences(path, "a") == []

    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER fail_on_heartbeat")
    store.write("a", _batch(sequence))  # the retry applies it
    if sequence is not None:
        store.write("a", _batch(sequence))  # and a second retry is skipped
    assert list(store.read_metric("a", "loss").steps) == [0, 1, 2]
    assert store.get_params("a") == {"seed": 1, "lr": 0.1}
    assert store.get_summary("a") == {"best": 1.0}
    assert store.get_run("a").tags == ("late",) and store.get_run("a").heartbeat_at == 200.0
    assert _applied_sequences(path, "a") == ([] if sequence is None else [3])
    store.close()
