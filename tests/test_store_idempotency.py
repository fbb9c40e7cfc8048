"""Idempotent write batches: a batch with a sequence number is stored once, however often it is written.

The backend-generic tests run against SQLite and PostgreSQL (``open_again`` reopens the
same store); the rest are about SQLite's files, migrations and run transfer.
"""

from __future__ import annotations

import itertools
import sqlite3
import time
from array import array
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runpoint.store import (
    MediaRecord,
    MetricSeries,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
    open_store,
)
from runpoint.store.sqlite import SQLiteStore
from runpoint.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from runpoint.store.sqlite.transfer import export_run_db, import_run_db


def _record(run_id: str) -> RunRecord:
    now = time.time()
    return RunRecord(id=run_id, project="p", name=run_id, status=RunStatus.RUNNING,
                     created_at=now, heartbeat_at=now, dir=f"p/{run_id}")


def _series(steps: list[int], values: list[float]) -> MetricSeries:
    return MetricSeries(array("q", steps), array("d", values), array("d", [1000.0 + s for s in steps]))


def _batch(sequence: int | None, steps: list[int], value: float = 1.0) -> WriteBatch:
    return WriteBatch(metrics={"loss": _series(steps, [value] * len(steps))}, summary={"last": value},
                      sequence=sequence)


def _points(store: Store, run_id: str = "a", key: str = "loss") -> list[tuple[int, float]]:
    series = store.read_metric(run_id, key)
    return sorted(zip(series.steps, series.values))


def _store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.create_run(_record("a"))
    return store


@pytest.fixture(params=["sqlite", "postgres"])
def open_again(request, tmp_path) -> Callable[[], Store]:
    """Opens (again) one store of the backend: SQLite in tmp_path, or a fresh PostgreSQL database."""
    location = str(tmp_path / "runpoint.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    opened: list[Store] = []

    def open_it() -> Store:
        opened.append(open_store(f"sqlite:///{location}" if request.param == "sqlite" else location))
        return opened[-1]

    yield open_it
    for store in opened:
        store.close()


@pytest.fixture
def store(open_again) -> Store:
    """A store of the backend with run "a" in it."""
    store = open_again()
    store.create_run(_record("a"))
    return store


def test_the_same_sequence_written_twice_is_stored_once(store) -> None:
    store.write("a", _batch(7, [0, 1, 2]))
    store.write("a", _batch(7, [0, 1, 2]))
    assert _points(store) == [(0, 1.0), (1, 1.0), (2, 1.0)]
    assert store.metric_stats("a")["loss"].count == 3


def test_a_retry_is_skipped_whole_even_when_its_content_differs(store) -> None:
    store.write("a", _batch(7, [0], value=1.0))
    store.write("a", WriteBatch(metrics={"loss": _series([5], [9.0])}, params={"p": 1}, summary={"last": 9.0},
                                heartbeat_at=1.0, sequence=7))
    assert _points(store) == [(0, 1.0)]
    assert store.get_params("a") == {} and store.get_summary("a") == {"last": 1.0}
    assert store.get_run("a").heartbeat_at != 1.0


def test_two_sequences_are_both_stored(store) -> None:
    store.write("a", _batch(7, [0, 1]))
    store.write("a", _batch(8, [0, 1]))
    assert _points(store) == [(0, 1.0), (0, 1.0), (1, 1.0), (1, 1.0)]


def test_sequences_are_per_run(store) -> None:
    store.create_run(_record("b"))
    store.write("a", _batch(7, [0]))
    store.write("b", _batch(7, [0]))
    assert _points(store, "a") == _points(store, "b") == [(0, 1.0)]


def test_without_a_sequence_every_write_is_stored(store) -> None:
    store.write("a", _batch(None, [0, 1]))
    store.write("a", _batch(None, [0, 1]))
    assert _points(store) == [(0, 1.0), (0, 1.0), (1, 1.0), (1, 1.0)]


def test_the_key_survives_close_and_reopen(store, open_again) -> None:
    store.write("a", _batch(7, [0, 1, 2]))
    store.close()
    store = open_again()
    store.write("a", _batch(7, [0, 1, 2]))
    assert _points(store) == [(0, 1.0), (1, 1.0), (2, 1.0)]


def test_a_retry_does_not_write_its_media_files_over_newer_ones(tmp_path) -> None:
    store = _store(tmp_path / "runpoint.db")

    def image(sequence: int, content: bytes) -> WriteBatch:
        record = MediaRecord(key="img", step=0, kind="image", time=1.0, path="media/img/0.png", file=content)
        return WriteBatch(media=[record], sequence=sequence)

    store.write("a", image(7, b"first"))
    store.write("a", image(8, b"second"))  # the same key and step: replaces the first
    store.write("a", image(7, b"first"))  # a late retry of batch 7
    assert (tmp_path / "p" / "a" / "media" / "img" / "0.png").read_bytes() == b"second"
    store.close()


def test_deleting_a_run_deletes_its_keys(tmp_path) -> None:
    path = tmp_path / "runpoint.db"
    store = _store(path)
    store.write("a", _batch(7, [0]))
    store.delete_run("a")
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM applied_batches").fetchone()[0] == 0
    store.create_run(_record("a"))  # the id used again starts with no keys
    store.write("a", _batch(7, [0]))
    assert _points(store) == [(0, 1.0)]
    store.close()


def test_a_version_1_database_gains_the_table(tmp_path) -> None:
    path = tmp_path / "runpoint.db"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](conn)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (id, project, name, status, dir, created_at, heartbeat_at)"
                 " VALUES ('a', 'p', 'a', 'running', 'p/a', 1.0, 1.0)")
    conn.close()
    store = SQLiteStore(path, create=False)
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.get_run("a").name == "a"
    store.write("a", _batch(7, [0]))
    store.write("a", _batch(7, [0]))
    assert _points(store) == [(0, 1.0)]
    store.close()


def test_an_exported_and_imported_run_keeps_its_points_but_not_its_keys(tmp_path) -> None:
    source = _store(tmp_path / "source.db")
    source.write("a", _batch(7, [0]))
    export_run_db(source, "a", tmp_path / "run.db")
    target = SQLiteStore(tmp_path / "target.db")
    import_run_db(target, tmp_path / "run.db")
    assert _points(target) == [(0, 1.0)]
    assert target._conn().execute("SELECT count(*) FROM applied_batches").fetchone()[0] == 0
    source.close()
    target.close()


# a batch: its sequence and the steps it logs; each batch's points carry its index as value
_batches = st.lists(
    st.tuples(st.integers(0, 5), st.lists(st.integers(0, 1000), min_size=1, max_size=4)), min_size=1, max_size=8
)


_example_runs = itertools.count()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batches=_batches, data=st.data())
def test_random_batches_applied_in_any_order_with_repeats_store_each_sequence_once(store, batches, data) -> None:
    indices = list(range(len(batches)))
    extra = data.draw(st.lists(st.sampled_from(indices), max_size=10), label="repeats")
    order = data.draw(st.permutations(indices + extra), label="order")
    expected: list[tuple[int, float]] = []
    claimed: set[int] = set()
    for index in order:  # the model: the first batch applied with a sequence wins, later ones are skipped
        sequence, steps = batches[index]
        if sequence not in claimed:
            claimed.add(sequence)
            expected.extend((step, float(index)) for step in steps)
    run_id = f"run{next(_example_runs)}"  # a new run per example, in the one store of the test
    store.create_run(_record(run_id))
    for index in order:
        sequence, steps = batches[index]
        store.write(run_id, _batch(sequence, steps, value=float(index)))
    assert _points(store, run_id) == sorted(expected)
