"""A sink that hangs, raises, flaps or crawls never slows or stops training.

Each test runs a real training loop with a misbehaving sink beside a well-behaved one,
then checks that the loop and ``finish`` returned within bounds far below "forever",
that runpoint's own store has every point, and that ``external.json`` says what
happened to the bad sink. The bounds are generous: what they catch is a hang.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import runpoint as rp
from runpoint.sinks import SinkBatch, SinkOptions, SinkRun, read_external
from runpoint.sinks._isolation import IsolatedSink
from runpoint.store.sqlite import SQLiteStore

from .conftest import free_port, run_script

FAST = SinkOptions(call_timeout=0.5, finish_timeout=1.0, backoff=0.01)
STEPS = 3000


class RecordingSink:
    """Keeps everything it receives; the well-behaved neighbour of the broken sinks."""

    name = "recording"

    def __init__(self, options: SinkOptions = FAST) -> None:
        self.options = options
        self.points: list[tuple[str, int, float]] = []
        self.status: str | None = None
        self.started: SinkRun | None = None

    def start(self, run: SinkRun) -> dict[str, Any]:
        self.started = run
        return {"id": run.id}

    def write(self, batch: SinkBatch) -> None:
        for key, series in batch.metrics.items():
            self.points.extend((key, step, value) for step, value in zip(series.steps, series.values))

    def finish(self, status: str) -> None:
        self.status = status


class HangingSink(RecordingSink):
    """Never returns from the call named ``hang_in``."""

    name = "hanging"

    def __init__(self, hang_in: str, options: SinkOptions = FAST) -> None:
        super().__init__(options)
        self.hang_in = hang_in
        self.entered = threading.Event()

    def _maybe_hang(self, call: str) -> None:
        if call == self.hang_in:
            self.entered.set()
            threading.Event().wait()  # forever

    def start(self, run: SinkRun) -> dict[str, Any]:
        self._maybe_hang("start")
        return super().start(run)

    def write(self, batch: SinkBatch) -> None:
        self._maybe_hang("write")
        super().write(batch)

    def finish(self, status: str) -> None:
        self._maybe_hang("finish")
        super().finish(status)


class RaisingSink(RecordingSink):
    """Raises from ``write`` the first ``failures`` times (always, when None)."""

    name = "raising"

    def __init__(self, failures: int | None = None, options: SinkOptions = FAST) -> None:
        super().__init__(options)
        self.failures = failures
        self.calls = 0

    def write(self, batch: SinkBatch) -> None:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise ConnectionError(f"server unreachable (call {self.calls})")
        super().write(batch)


def _train(root: Path, sinks: list[Any], steps: int = STEPS) -> tuple[rp.Run, float]:
    began = time.monotonic()
    with rp.init(project="iso", config={"lr": 0.1}, root=root, sinks=sinks, flush_interval=0.05) as run:
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
            if step % 1000 == 999:
                assert run.flush(timeout=10), "flush must not wait for sinks"
                time.sleep(0.2)  # let the writer hand batches over while training goes on
    return run, time.monotonic() - began


def _stored_points(root: Path, run_id: str) -> int:
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.get_run(run_id).status is rp.RunStatus.COMPLETED
        return sum(len(store.read_metric(run_id, key)) for key in ("loss", "acc"))


def _sink_warnings(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and f"the {name} sink" in r.getMessage()]


@pytest.mark.parametrize("hang_in", ["start", "write"])
def test_sink_hanging_forever_is_disabled_and_training_finishes(root: Path, hang_in: str, caplog) -> None:
    hanging, neighbour = HangingSink(hang_in), RecordingSink()
    run, elapsed = _train(root, [hanging, neighbour])

    assert elapsed < 30  # a blocked loop or finish would never get here
    assert hanging.entered.is_set()
    assert _stored_points(root, run.id) == 2 * STEPS
    record = read_external(run.dir)["hanging"]
    assert record["status"] == "disabled"
    assert record["error"] == f"{hang_in}() did not return within 0.5 s"
    # the hung write() holds the points it was given: in flight, neither sent nor dropped
    assert record["points_sent"] == 0
    assert record["points_dropped"] + record.get("points_in_flight", 0) == 2 * STEPS
    assert (record.get("points_in_flight", 0) > 0) == (hang_in == "write")
    assert len(_sink_warnings(caplog, "hanging")) == 1
    assert len(neighbour.points) == 2 * STEPS and neighbour.status == "completed"


def test_sink_hanging_in_finish_does_not_hang_the_finish(root: Path) -> None:
    hanging = HangingSink("finish")
    run, elapsed = _train(root, [hanging], steps=500)

    assert elapsed < 30
    assert _stored_points(root, run.id) == 1000
    record = read_external(run.dir)["hanging"]
    assert record["status"] == "timed_out" and record["error"] == "did not finish within 1 s"
    assert record["points_sent"] == 1000  # everything went out before finish() hung


def test_sink_that_always_raises_is_retried_then_disabled_with_one_warning(root: Path, caplog) -> None:
    raising, neighbour = RaisingSink(), RecordingSink()
    run, elapsed = _train(root, [raising, neighbour])

    assert elapsed < 30
    assert _stored_points(root, run.id) == 2 * STEPS
    options = raising.options
    assert raising.calls == (1 + options.retries) * options.max_failures  # then never called again
    record = read_external(run.dir)["raising"]
    assert record["status"] == "disabled" and record["failures"] == options.max_failures
    assert record["error"] == (
        f"write() raised ConnectionError: server unreachable (call {raising.calls}) "
        f"({options.max_failures} failures in a row)"
    )
    assert "Traceback" in record["traceback"] and "ConnectionError" in record["traceback"]
    assert record["points_sent"] == 0 and record["points_dropped"] == 2 * STEPS
    warnings = _sink_warnings(caplog, "raising")
    assert len(warnings) == 1 and "disabled" in warnings[0]
    assert len(neighbour.points) == 2 * STEPS


def test_flaky_sink_recovers_through_retries_and_loses_nothing(root: Path, caplog) -> None:
    flaky = RaisingSink(failures=2)  # fewer than its retries
    run, _ = _train(root, [flaky])

    record = read_external(run.dir)["raising"]
    assert record["status"] == "finished" and record["failures"] == 0
    assert record["points_sent"] == 2 * STEPS and record["points_dropped"] == 0
    stored = set()
    with SQLiteStore(root / "runpoint.db") as store:
        for key in ("loss", "acc"):
            stored |= {(key, s, v) for s, v, _ in store.read_metric(run.id, key).points()}
    assert set(flaky.points) == stored
    assert _sink_warnings(caplog, "raising") == []


def test_slow_sink_drops_only_its_own_copy_when_it_falls_behind(root: Path, caplog) -> None:
    class SlowSink(RecordingSink):
        name = "slow"

        def write(self, batch: SinkBatch) -> None:
            time.sleep(0.3)
            super().write(batch)

    slow = SlowSink(SinkOptions(call_timeout=5, finish_timeout=5, max_pending_points=200))
    run, elapsed = _train(root, [slow])

    assert elapsed < 30
    assert _stored_points(root, run.id) == 2 * STEPS
    record = read_external(run.dir)["slow"]
    assert record["status"] == "finished"
    assert record["points_dropped"] > 0
    assert record["points_sent"] + record["points_dropped"] == 2 * STEPS
    assert len(slow.points) == record["points_sent"]
    assert len(_sink_warnings(caplog, "slow")) == 1


def test_mlflow_sink_pointing_at_a_dead_server_never_blocks_training(root: Path, caplog) -> None:
    pytest.importorskip("mlflow")
    from runpoint.sinks import MLflowSink

    dead = f"http://127.0.0.1:{free_port()}"
    sink = MLflowSink(tracking_uri=dead, options=SinkOptions(call_timeout=3, finish_timeout=1, backoff=0.01))
    run, elapsed = _train(root, [sink], steps=500)

    assert elapsed < 60
    assert _stored_points(root, run.id) == 1000
    record = read_external(run.dir)["mlflow"]
    assert record["status"] in {"disabled", "timed_out"}, record
    assert record["points_sent"] == 0 and record["points_dropped"] + record.get("points_in_flight", 0) == 1000


def test_script_with_a_hanging_sink_exits_and_keeps_its_data(tmp_path: Path, root: Path) -> None:
    result = run_script(tmp_path, root, """
        import threading, runpoint as rp
        from runpoint.sinks import SinkOptions

        class Hanging:
            name = "hanging"
            options = SinkOptions(call_timeout=0.5, finish_timeout=1)
            def start(self, run): return {}
            def write(self, batch): threading.Event().wait()
            def finish(self, status): threading.Event().wait()

        run = rp.init(project="iso", id="r1", sinks=[Hanging()])
        for step in range(2000):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        print("done", flush=True)
        # no finish(): the interpreter's exit finishes the run, and must not hang on the sink
    """, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "the hanging sink is disabled" in result.stderr
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.get_run("r1").status is rp.RunStatus.COMPLETED
        assert list(store.read_metric("r1", "loss").steps) == list(range(2000))
    assert read_external(root / "iso" / "r1")["hanging"]["status"] == "disabled"


def test_show_says_where_a_run_is_mirrored_and_what_failed(root: Path) -> None:
    import json

    from .conftest import cli

    run, _ = _train(root, ["tensorboard", RaisingSink(options=SinkOptions(max_failures=1, backoff=0.01))], steps=50)
    shown = cli(root, "show", run.id, "--json")
    assert shown.returncode == 0, shown.stderr
    external = json.loads(shown.stdout)["external"]
    assert external["tensorboard"]["external"]["logdir"] == str(run.dir / "tensorboard")
    assert external["raising"]["status"] == "disabled"
    table = cli(root, "show", run.id).stdout
    assert "mirrored to" in table and "write() raised ConnectionError" in table and "finished" in table


class _OwnedLock:
    """A lock that knows which thread holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def __enter__(self) -> "_OwnedLock":
        self._lock.acquire()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner = None
        self._lock.release()


def _counted_under_lock() -> tuple[type, list[str]]:
    """An IsolatedSink whose counters note every update made without holding its lock."""
    from runpoint.sinks._isolation import IsolatedSink

    unlocked: list[str] = []

    def counter(name: str) -> property:
        def get(self: Any) -> int:
            return self.__dict__.get(name, 0)

        def set_(self: Any, value: int) -> None:
            lock = self.__dict__.get("_owned")
            if lock is not None and lock.owner != threading.get_ident():
                unlocked.append(f"{name} on {threading.current_thread().name}")
            self.__dict__[name] = value

        return property(get, set_)

    class Checked(IsolatedSink):  # type: ignore[misc]
        points_sent = counter("points_sent")
        points_dropped = counter("points_dropped")
        media_sent = counter("media_sent")

        @property
        def _lock(self) -> _OwnedLock:
            return self.__dict__["_owned"]

        @_lock.setter
        def _lock(self, _: Any) -> None:
            self.__dict__["_owned"] = _OwnedLock()

    return Checked, unlocked


def test_sink_counts_are_updated_under_the_lock_and_add_up(tmp_path: Path) -> None:
    from array import array

    from runpoint.store.base import MetricSeries

    class EveryOtherWriteFails(RecordingSink):
        calls = 0

        def write(self, batch: SinkBatch) -> None:
            self.calls += 1
            if self.calls % 2:
                raise ConnectionError("flaky")
            super().write(batch)

    options = SinkOptions(retries=0, backoff=0.0, max_failures=10**6, max_pending_points=50)
    checked, unlocked = _counted_under_lock()
    sink = checked(EveryOtherWriteFails(options), SinkRun(id="r", project="p", name="n", dir=tmp_path, config={}),
                   lambda _: None)
    total = 0
    for batch_number in range(400):
        steps = range(batch_number * 10, batch_number * 10 + 10)
        series = MetricSeries(array("q", steps), array("d", (float(s) for s in steps)), array("d", (1.0,) * 10))
        sink.submit(SinkBatch(metrics={"x": series}))
        total += 10
        if batch_number % 7 == 0:
            time.sleep(0.001)  # let the sink thread run between submits
    sink.request_finish("completed")
    assert sink.wait(time.monotonic() + 30)
    record = sink.record()
    assert record["status"] == "finished", record
    assert unlocked == []
    assert record["points_sent"] + record["points_dropped"] == total
    assert record["points_sent"] > 0 and record["points_dropped"] > 0


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_finish_does_not_wait_for_a_sink_already_disabled_as_hung(root: Path) -> None:
    hanging = HangingSink("write", SinkOptions(call_timeout=0.3, finish_timeout=20, backoff=0.01))
    run = rp.init(project="iso", root=root, sinks=[hanging], flush_interval=0.05)
    run.log({"loss": 1.0}, step=0)
    assert hanging.entered.wait(10)
    deadline = time.monotonic() + 10
    while read_external(run.dir).get("hanging", {}).get("status") != "disabled":  # the writer's heartbeat checks
        assert time.monotonic() < deadline, read_external(run.dir)
        time.sleep(0.05)
    began = time.monotonic()
    run.finish()
    assert time.monotonic() - began < 5  # not the 20 s finish_timeout


class _SlowSink(RecordingSink):
    """Records what it gets, ``delay`` seconds into every write."""

    name = "slow"

    def __init__(self, options: SinkOptions, delay: float) -> None:
        super().__init__(options)
        self.delay = delay

    def write(self, batch: SinkBatch) -> None:
        time.sleep(self.delay)
        super().write(batch)


def test_slow_sink_that_timed_out_is_counted_as_sent_when_its_call_returns(root: Path) -> None:
    slow = _SlowSink(SinkOptions(call_timeout=30, finish_timeout=0.5), delay=1.5)
    with rp.init(project="iso", root=root, sinks=[slow], flush_interval=10) as run:
        for step in range(100):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
    record = read_external(run.dir)["slow"]
    assert record["status"] == "timed_out"
    assert record["points_sent"] + record["points_dropped"] + record.get("points_in_flight", 0) == 100
    assert record.get("points_in_flight") == 100, record  # handed over, the call not back yet
    deadline = time.monotonic() + 10
    while read_external(run.dir)["slow"].get("points_in_flight"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    record = read_external(run.dir)["slow"]
    assert record["points_sent"] == len(slow.points) == 100 and record["points_dropped"] == 0


def test_external_json_shows_progress_while_a_sink_works(root: Path) -> None:
    slow = _SlowSink(SinkOptions(progress_interval=0.1), delay=0.05)
    with rp.init(project="iso", root=root, sinks=[slow], flush_interval=0.02) as run:
        seen = []
        for step in range(40):
            run.log({"loss": 1.0}, step=step)
            time.sleep(0.03)
            seen.append(read_external(run.dir).get("slow", {}).get("points_sent", 0))
    assert any(0 < sent < 40 for sent in seen), seen  # updated before the run finished
    assert read_external(run.dir)["slow"]["points_sent"] == 40


def _series(first: int, count: int) -> Any:
    from array import array

    from runpoint.store.base import MetricSeries

    steps = range(first, first + count)
    return MetricSeries(array("q", steps), array("d", map(float, steps)), array("d", (1.0,) * count))


def test_a_backlog_merges_in_linear_time_and_in_order() -> None:
    batches = [SinkBatch(metrics={"x": _series(i * 100, 100)}) for i in range(20_000)]  # the 2 M-point cap
    began = time.process_time()
    merged = SinkBatch.concat(batches)
    assert time.process_time() - began < 3  # generous: quadratic copying took 12.5 s of CPU
    assert list(merged.metrics["x"].steps) == list(range(2_000_000))
    assert len(batches[0].metrics["x"]) == 100  # the batches (shared with other sinks) are not modified

    a = SinkBatch(tags=("t1",), summary={"s": 1, "d": 2})
    b = SinkBatch(tags=("t1", "t2"), summary_deleted=("d",), summary={"e": 3})
    c = SinkBatch(summary={"d": 4}, summary_deleted=("e",))
    merged = SinkBatch.concat([a, b, c])
    assert merged.tags == ("t1", "t2") and merged.summary == {"s": 1, "d": 4} and merged.summary_deleted == ("e",)


def test_a_media_only_backlog_is_capped(tmp_path: Path) -> None:
    from runpoint.store.base import MediaRecord

    release = threading.Event()

    class Blocked(RecordingSink):
        media = 0

        def write(self, batch: SinkBatch) -> None:
            release.wait(10)
            self.media += len(batch.media)

    blocked = Blocked(SinkOptions(max_pending_media=50))
    sink = IsolatedSink(blocked, SinkRun(id="r", project="p", name="n", dir=tmp_path, config={}), lambda _: None)
    record = MediaRecord(key="img", step=0, kind="text", time=1.0, data={"text": "x"})
    for _ in range(500):
        sink.submit(SinkBatch(media=[record]))
    release.set()
    sink.request_finish("completed")
    assert sink.wait(time.monotonic() + 10)
    counts = sink.record()
    # at most the cap pending plus what the first, blocked call took (up to the cap itself,
    # when the thread started after 50 submissions were queued)
    assert counts["media_sent"] == blocked.media <= 100
    assert counts["media_sent"] + counts["media_dropped"] == 500


def test_a_rewind_reaches_a_sink_in_order_with_the_points(root: Path) -> None:
    class Rewinding(RecordingSink):
        name = "rewinding"

        def rewind(self, step: int) -> dict[str, Any]:
            self.points = [point for point in self.points if point[1] <= step]
            return {"id": "after-rewind"}

    with rp.init(project="iso", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run)
        for step in range(10):
            run.log({"loss": float(step)}, step=step)
            if step == 4:
                ckpt.save(step, {"step": step})
    sink = Rewinding()
    sink.points = [("loss", step, float(step)) for step in range(10)]  # what the killed attempt had sent
    with rp.init(project="iso", resume="r1", root=root, console=False, sinks=[sink]) as run:
        run.log({"loss": 100.0}, step=10)  # before the restore: rewound away with the rest
        assert rp.CheckpointManager(run).restore({"step": None}) == 5
        for step in range(5, 8):
            run.log({"loss": step + 0.5}, step=step)
    assert sink.points == [("loss", s, float(s)) for s in range(5)] + [("loss", s, s + 0.5) for s in range(5, 8)]
    record = read_external(run.dir)["rewinding"]
    assert record["external"] == {"id": "after-rewind"} and record["status"] == "finished"
