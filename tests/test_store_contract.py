"""One contract test over every Store backend: SQLite (a root, a URI), PostgreSQL, and a team server's (HttpStore over PostgreSQL)."""

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
from runpoint.query.runs import media_store
from runpoint.store import (
    CheckpointRecord,
    Condition,
    MediaRecord,
    MetricSeries,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
    checkpoint_registry,
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


def _http(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return open_store(request.getfixturevalue("http_store_url"))  # runpoint server over a fresh PostgreSQL database


BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Store]] = {
    "sqlite-root": _sqlite_root, "sqlite-uri": _sqlite_uri, "postgres": _postgres, "http": _http,
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


def _wavy(steps: list[int]) -> list[float]:
    return [math.nan if s % 97 == 0 or s == 5999 else math.sin(s) for s in steps]


def test_many_small_batches_merge_into_chunks_and_read_back_whole(store) -> None:
    store.create_run(_record("a"))
    expected = MetricSeries()
    for start in range(0, 6000, 150):  # 40 flushes: small chunks merge, then fill 4096-point chunks
        steps = list(range(start, start + 150))
        values = _wavy(steps)
        store.write("a", WriteBatch(metrics={"x": _series(steps, values)}))
        expected.extend(_series(steps, values))
    assert store.read_metric("a", "x") == expected  # bit for bit, NaN included, in logged order
    stats = store.metric_stats("a")["x"]
    finite = [(v, s) for s, v in zip(expected.steps, expected.values) if v == v]
    assert (stats.count, stats.last_step) == (6000, 5999) and math.isnan(stats.last)
    assert (stats.min, stats.min_step) == min(finite) and (stats.max, stats.max_step) == max(finite)
    assert store.read_metric("a", "x", min_step=4000, max_step=4200) == _series(
        list(range(4000, 4201)), _wavy(list(range(4000, 4201))))


def test_truncate_drops_points_after_a_step_and_recomputes_stats(store) -> None:
    store.create_run(_record("a"))
    store.write("a", WriteBatch(metrics={"x": _series(list(range(5000)), [float(s) for s in range(5000)]),
                                         "late": _series([900, 901], [1.0, 2.0])}))
    image = MediaRecord(key="img", step=800, kind="text", time=1.0, data={"text": "hi"})
    store.write("a", WriteBatch(media=[image, MediaRecord(key="img", step=3, kind="text", time=1.0)]))
    assert store.truncate_metrics("a", 499) == 4500 + 2
    assert store.read_metric("a", "x") == _series(list(range(500)), [float(s) for s in range(500)])
    stats = store.metric_stats("a")
    assert set(stats) == {"x"} and store.metric_keys("a") == ["x"]  # a key with nothing left is gone
    assert (stats["x"].count, stats["x"].max, stats["x"].max_step, stats["x"].last) == (500, 499.0, 499, 499.0)
    assert [r.step for r in media_store(store).read_media("a", "img")] == [3]
    store.write("a", WriteBatch(metrics={"x": _series([500], [-1.0])}))  # the resumed attempt logs on
    assert store.metric_stats("a")["x"].min == -1.0 and len(store.read_metric("a", "x")) == 501


def test_rank_rows_and_a_rank_heartbeat(store) -> None:
    store.create_run(_record("a"))
    rank = lambda r, job="j1": RankRecord(run_id="a", rank=r, host=f"h{r}", pid=100 + r, started_at=1.0,  # noqa: E731
                                          heartbeat_at=1.0, job=job)
    store.register_rank(rank(0))
    store.register_rank(rank(1))
    store.set_rank_status("a", 1, RunStatus.FAILED, error="oom", ended_at=3.0)
    assert [(r.rank, r.host, r.status, r.error, r.job) for r in store.list_ranks("a")] == [
        (0, "h0", RunStatus.RUNNING, None, "j1"), (1, "h1", RunStatus.FAILED, "oom", "j1")]
    store.set_status("a", RunStatus.CRASHED, error="rank 1 stopped beating", ended_at=4.0)
    store.write("a", WriteBatch(heartbeat_at=50.0, rank=1))  # rank 1 is alive after all: the verdict goes
    run = store.get_run("a")
    assert (run.status, run.ended_at, run.heartbeat_at) == (RunStatus.RUNNING, None, run.created_at)
    store.write("a", WriteBatch(heartbeat_at=60.0, rank=0))  # rank 0's heartbeat is the run's
    assert store.get_run("a").heartbeat_at == 60.0 and store.list_ranks("a")[0].heartbeat_at == 60.0
    store.register_rank(rank(0, job="j2"), reset=True)  # a new attempt starts with rank 0 alone
    assert [(r.rank, r.job) for r in store.list_ranks("a")] == [(0, "j2")]
    assert store.list_ranks("missing") == []


def test_the_checkpoint_registry(store) -> None:
    registry = checkpoint_registry(store)
    assert registry is not None
    store.create_run(_record("a"))
    for step in (100, 200, 300):
        registry.add_checkpoint(CheckpointRecord(run_id="a", step=step, path=f"checkpoints/{step}", bytes=step * 10,
                                                 created_at=float(step), metrics={"val/loss": 1 / step},
                                                 is_best=step == 200, hash=f"h{step}"))
    registry.mark_checkpoint_deleted("a", 100, deleted_at=999.0)
    assert [(c.step, c.is_best) for c in registry.list_checkpoints("a")] == [(200, True), (300, False)]
    everything = registry.list_checkpoints("a", include_deleted=True)
    assert (everything[0].deleted_at, everything[0].metrics, everything[0].bytes) == (999.0, {"val/loss": 0.01}, 1000)
    registry.set_best_checkpoint("a", 300)
    assert [c.step for c in registry.list_checkpoints("a") if c.is_best] == [300]
    registry.set_best_checkpoint("a", None)
    assert not any(c.is_best for c in registry.list_checkpoints("a", include_deleted=True))
    registry.add_checkpoint(CheckpointRecord(run_id="a", step=300, path="elsewhere", bytes=1, created_at=5.0))
    assert [(c.step, c.path, c.hash) for c in registry.list_checkpoints("a")] == [(200, "checkpoints/200", "h200"),
                                                                                 (300, "elsewhere", None)]


def test_media_rows_by_key_and_step(store) -> None:
    store.create_run(_record("a"))
    png = b"\x89PNG not really"
    records = [MediaRecord(key="val/img", step=s, kind="image", time=float(s), data={"width": 2, "height": 1},
                           path=f"media/val/img/{s}.png", file=png) for s in (0, 10, 20)]
    store.write("a", WriteBatch(media=[*records, MediaRecord(key="notes", step=5, kind="text", time=1.0,
                                                              data={"text": "ok"})]))
    store.write("a", WriteBatch(media=[MediaRecord(key="notes", step=5, kind="text", time=2.0, data={"text": "new"})]))
    media = media_store(store)
    assert [(k.key, k.kind, k.count, k.first_step, k.last_step) for k in media.media_keys("a")] == [
        ("notes", "text", 1, 5, 5), ("val/img", "image", 3, 0, 20)]
    assert media.read_media("a", "notes")[0].data == {"text": "new"}  # one value per key and step
    assert [r.step for r in media.read_media("a", "val/img", min_step=5)] == [10, 20]
    (one,) = media.read_media("a", "val/img", step=10)
    assert (one.path, one.data, one.kind, one.time) == ("media/val/img/10.png", {"width": 2, "height": 1}, "image", 10.0)


def test_bad_input_is_refused_alike(store) -> None:
    store.create_run(_record("a"))
    escaping = MediaRecord(key="img", step=0, kind="image", time=1.0, path="media/../../../escape.png", file=b"x")
    with pytest.raises(StoreError, match="leaves"):
        store.write("a", WriteBatch(metrics={"loss": _series([0], [1.0])}, media=[escaping]))
    assert store.metric_keys("a") == [] and media_store(store).media_keys("a") == []  # nothing of the batch
    with pytest.raises(StoreError):
        store.write("no-such-run", WriteBatch(heartbeat_at=1.0, sequence=1))
    with pytest.raises(RunNotFoundError):
        store.get_meta("no-such-run")
    with pytest.raises(RunNotFoundError):
        store.reopen_run("no-such-run", host="h", pid=1, now=1.0)
    assert store.set_status("no-such-run", RunStatus.FAILED) is False
    odd = ["../../etc/passwd", "a/b\\c", "with space", "ünï/кириллица", "x" * 300]  # keys are names, not paths
    store.write("a", WriteBatch(metrics={key: _series([1], [2.0]) for key in odd}, summary={k: 1 for k in odd}))
    assert store.metric_keys("a") == sorted(odd) and sorted(store.get_summary("a")) == sorted(odd)
    assert all(store.read_metric("a", key) == _series([1], [2.0]) for key in odd)


def test_two_store_objects_on_one_database_append_to_the_same_metric_in_turn(store, request, tmp_path) -> None:
    # e.g. two processes of one job, or `runpoint recover` beside a live writer: each
    # object's idea of where a metric's chunk list ends must follow the other's writes
    other = BACKENDS[request.node.callspec.params["store"]](request, tmp_path)
    try:
        store.create_run(_record("a"), {})
        expected = []
        for turn in range(40):
            writer = store if turn % 2 == 0 else other
            steps = list(range(turn * 3, turn * 3 + 3))
            writer.write("a", WriteBatch(metrics={"loss": _series(steps, [float(s) for s in steps])}))
            expected += steps
        for reader in (store, other):
            got = reader.read_metric("a", "loss")
            assert list(got.steps) == expected and list(got.values) == [float(s) for s in expected]
        assert store.metric_stats("a")["loss"].count == len(expected)
    finally:
        other.close()
