"""One contract test over every Store backend: SQLite (a root, a URI) and PostgreSQL (the server's client comes later)."""

from __future__ import annotations

import math
import sqlite3
import time
from array import array
from pathlib import Path
from typing import Callable

import pytest

from runpoint.errors import (
    RunExistsError,
    RunNotFoundError,
    RunpointError,
    SchemaVersionError,
    StoreError,
)
from runpoint.store import (
    Condition,
    MetricSeries,
    RunQuery,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
    open_store,
)
from runpoint.store.sqlite import SQLiteStore
from runpoint.store.sqlite.schema import SCHEMA_VERSION


def _sqlite_root(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(tmp_path / "root")


def _sqlite_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(f"sqlite:///{tmp_path}/direct.db")  # tmp_path is absolute: sqlite:////tmp/...


def _postgres(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(request.getfixturevalue("postgres_url"))  # a fresh database on the session's server


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite-root": _sqlite_root, "sqlite-uri": _sqlite_uri, "postgres": _postgres,
}


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path) -> Store:
    backend = BACKENDS[request.param](request, tmp_path)
    yield backend
    backend.close()


def _record(run_id: str, project: str = "p", created: float | None = None, **fields) -> RunRecord:
    now = created if created is not None else time.time()
    return RunRecord(id=run_id, project=project, name=fields.pop("name", f"name-{run_id}"), status=RunStatus.RUNNING,
                     created_at=now, heartbeat_at=now, dir=f"{project}/{run_id}", **fields)


def _series(steps, values, t0=1000.0) -> MetricSeries:
    return MetricSeries(array("q", steps), array("d", values), array("d", [t0 + s for s in steps]))


def test_create_get_and_duplicate(store) -> None:
    store.create_run(_record("a", tags=("x", "y"), notes="n", group="g", config_hash="abc"), {"lr": 0.1, "opt": "adam"})
    run = store.get_run("a")
    assert (run.tags, run.notes, run.group, run.config_hash, run.status) == (("x", "y"), "n", "g", "abc", RunStatus.RUNNING)
    assert store.get_params("a") == {"lr": 0.1, "opt": "adam"}
    with pytest.raises(RunExistsError):
        store.create_run(_record("a"))
    with pytest.raises(RunNotFoundError):
        store.get_run("missing")


def test_one_batch_is_applied_atomically(store) -> None:
    store.create_run(_record("a"))
    batch = WriteBatch(
        metrics={"loss": _series([0, 1, 2], [3.0, 2.0, 1.0]), "acc": _series([2], [0.5])},
        params={"extra": 1}, tags=("late",), summary={"best": 0.9}, heartbeat_at=12345.0,
    )
    store.write("a", batch)
    assert store.read_metric("a", "loss") == _series([0, 1, 2], [3.0, 2.0, 1.0])
    assert store.metric_keys("a") == ["acc", "loss"]
    assert store.get_params("a") == {"extra": 1}
    assert store.get_summary("a") == {"best": 0.9}
    assert store.get_run("a").tags == ("late",) and store.get_run("a").heartbeat_at == 12345.0
    store.write("a", WriteBatch(summary_deleted=("best",)))
    assert store.get_summary("a") == {}


def test_a_failing_batch_leaves_nothing_behind(store) -> None:
    store.create_run(_record("a"))
    store.write("a", WriteBatch(metrics={"loss": _series([0], [1.0])}))
    bad = WriteBatch(metrics={"loss": _series([1], [2.0])}, summary={"x": 1})
    with pytest.raises(StoreError):
        store.write("no-such-run", bad)  # foreign key: the run does not exist
    store.write("a", WriteBatch(metrics={"loss": _series([2], [3.0])}))
    assert store.read_metric("a", "loss").steps.tolist() == [0, 2]
    assert store.metric_stats("a")["loss"].count == 2


def test_stats_track_last_min_max_with_steps(store) -> None:
    store.create_run(_record("a"))
    store.write("a", WriteBatch(metrics={"x": _series([0, 1], [5.0, math.nan])}))
    store.write("a", WriteBatch(metrics={"x": _series([2, 3], [-1.0, 7.0])}))
    store.write("a", WriteBatch(metrics={"x": _series([4], [math.nan])}))
    stats = store.metric_stats("a")["x"]
    assert (stats.count, stats.min, stats.min_step, stats.max, stats.max_step, stats.last_step) == (5, -1.0, 2, 7.0, 3, 4)
    assert math.isnan(stats.last)
    assert store.metric_stats("a", ["x"]).keys() == {"x"}
    assert store.metric_stats("a", ["nope"]) == {}


def test_read_metric_within_a_step_range(store) -> None:
    store.create_run(_record("a"))
    store.write("a", WriteBatch(metrics={"x": _series(list(range(10_000)), [float(i) for i in range(10_000)])}))
    part = store.read_metric("a", "x", min_step=4090, max_step=4100)
    assert part.steps.tolist() == list(range(4090, 4101))
    assert store.read_metric("a", "x", min_step=9_999).values.tolist() == [9999.0]
    assert len(store.read_metric("a", "missing")) == 0


def test_status_changes_and_compare_and_set(store) -> None:
    store.create_run(_record("a"))
    assert store.set_status("a", RunStatus.CRASHED, expect=[RunStatus.RUNNING], heartbeat_before=0.0) is False
    assert store.set_status("a", RunStatus.CRASHED, expect=[RunStatus.RUNNING], heartbeat_before=time.time() + 1)
    assert store.set_status("a", RunStatus.COMPLETED, expect=[RunStatus.RUNNING]) is False
    store.write("a", WriteBatch(heartbeat_at=time.time()))  # a heartbeat revives a crashed run
    assert store.get_run("a").status is RunStatus.RUNNING
    assert store.set_status("a", RunStatus.FAILED, error="boom", ended_at=5.0)
    run = store.get_run("a")
    assert (run.status, run.error, run.ended_at) == (RunStatus.FAILED, "boom", 5.0)
    reopened = store.reopen_run("a", host="h", pid=7, now=10.0)
    assert (reopened.status, reopened.resume_count, reopened.host, reopened.pid, reopened.error) == (
        RunStatus.RUNNING, 1, "h", 7, None)
    with pytest.raises(RunpointError, match="another process resumed it"):  # a second resumer loses
        store.reopen_run("a", host="h2", pid=8, now=11.0)
    assert (store.get_run("a").pid, store.get_run("a").resume_count) == (7, 1)


def test_list_runs_filters(store) -> None:
    store.create_run(_record("a", created=1.0, tags=("cnn",), group="sweep"), {"lr": 0.1, "opt": "adam", "bn": True})
    store.create_run(_record("b", created=2.0, tags=("cnn", "big")), {"lr": 0.01, "opt": "sgd", "bn": False})
    store.create_run(_record("c", project="q", created=3.0, config_hash="ffee"), {"lr": 1.0})
    store.write("a", WriteBatch(metrics={"val/loss": _series([0, 1], [0.9, 0.4])}, summary={"acc": 0.8, "ok": True}))
    store.write("b", WriteBatch(metrics={"val/loss": _series([0], [0.6])}, summary={"acc": 0.9}))
    store.set_status("c", RunStatus.FAILED)

    def ids(**query) -> list[str]:
        return [run.id for run in store.list_runs(RunQuery(**query))]

    assert ids() == ["c", "b", "a"]
    assert ids(newest_first=False, limit=2) == ["a", "b"]
    assert ids(project="p") == ["b", "a"]
    assert ids(tags=("cnn", "big")) == ["b"]
    assert ids(statuses=(RunStatus.FAILED,)) == ["c"]
    assert ids(group="sweep") == ["a"]
    assert ids(config_hash="ff") == ["c"]
    assert ids(ids=("a", "c")) == ["c", "a"]
    assert ids(conditions=(Condition("params", "lr", "<", 0.5),)) == ["b", "a"]
    assert ids(conditions=(Condition("params", "opt", "=", "sgd"),)) == ["b"]
    assert ids(conditions=(Condition("params", "opt", "!=", "sgd"),)) == ["a"]
    assert ids(conditions=(Condition("params", "bn", "=", True),)) == ["a"]
    assert ids(conditions=(Condition("metrics", "val/loss", "<", 0.5),)) == ["a"]  # last value
    assert ids(conditions=(Condition("summary", "acc", ">=", 0.85),)) == ["b"]
    assert ids(conditions=(Condition("summary", "ok", "=", True),)) == ["a"]
    assert ids(conditions=(Condition("params", "lr", ">", 0.001), Condition("metrics", "val/loss", ">", 0.5))) == ["b"]


def test_find_runs_by_prefix_or_name(store) -> None:
    store.create_run(_record("abc1", name="alpha"))
    store.create_run(_record("abd2", name="beta"))
    assert {r.id for r in store.find_runs("ab")} == {"abc1", "abd2"}
    assert [r.id for r in store.find_runs("abc")] == ["abc1"]
    assert [r.id for r in store.find_runs("beta")] == ["abd2"]
    assert store.find_runs("zz") == []
    assert store.count_runs() == 2 and store.count_runs("p") == 2 and store.count_runs("q") == 0


def test_delete_run_removes_everything(store) -> None:
    store.create_run(_record("a", tags=("t",)), {"lr": 1})
    store.write("a", WriteBatch(metrics={"x": _series([0], [1.0])}, summary={"s": 1}))
    store.delete_run("a")
    with pytest.raises(RunNotFoundError):
        store.get_run("a")
    assert store.metric_keys("a") == [] and store.get_params("a") == {} and len(store.read_metric("a", "x")) == 0
    with pytest.raises(RunNotFoundError):
        store.delete_run("a")
    store.create_run(_record("a"))  # the id can be used again


def test_meta_round_trips(store) -> None:
    store.create_run(_record("a"), meta={"host": "h", "git": {"commit": "c0ffee"}})
    assert store.get_meta("a") == {"host": "h", "git": {"commit": "c0ffee"}}


def test_a_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "runpoint.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError, match="upgrade runpoint") as raised:
        SQLiteStore(path)
    assert raised.value.found == SCHEMA_VERSION + 1


def test_a_new_database_is_created_at_the_current_version_in_wal_mode(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "new.db")
    conn = store._conn()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_opening_a_missing_root_without_create_fails_clearly(tmp_path) -> None:
    with pytest.raises(StoreError, match="no runpoint store"):
        open_store(tmp_path / "nothing", create=False)
    with pytest.raises(StoreError, match="no store backend for ftp://"):
        open_store("ftp://host/x")
    assert not (tmp_path / "nothing").exists()
