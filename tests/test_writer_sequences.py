"""The writer numbers its batches, so a batch retried after a lost reply is stored once,
and a resumed run's batches never collide with an earlier attempt's numbers."""

from __future__ import annotations

import time

import runpoint as rp
from runpoint.run.writer import Writer
from runpoint.store import RunRecord, RunStatus
from runpoint.store.sqlite import SQLiteStore


class _LostReplyStore:
    """A real store whose first successful write raises afterwards, as a timed-out request would."""

    def __init__(self, store: SQLiteStore) -> None:
        self._store = store
        self.sequences: list[int | None] = []
        self.lost = 0

    def write(self, run_id, batch) -> None:
        self.sequences.append(batch.sequence)
        self._store.write(run_id, batch)
        if batch.metrics and not self.lost:
            self.lost += 1
            raise ConnectionError("the reply was lost")

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_batch_whose_reply_was_lost_is_retried_with_its_number_and_stored_once(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "runpoint.db")
    now = time.time()
    store.create_run(RunRecord(id="r", project="p", name="r", status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir="p/r"))
    flaky = _LostReplyStore(store)
    writer = Writer(flaky, "r", flush_interval=0.05)  # type: ignore[arg-type]
    for step in range(100):
        writer.put(step, now + step, {"loss": float(step)}, False)
    assert writer.flush(timeout=30)
    writer.close()
    retried = [s for s in flaky.sequences if flaky.sequences.count(s) > 1]
    assert flaky.lost == 1 and retried, flaky.sequences  # the same number went twice
    series = store.read_metric("r", "loss")
    assert list(series.steps) == list(range(100))  # once each
    store.close()


def test_a_resumed_run_numbers_its_batches_apart_from_the_first_attempt(tmp_path) -> None:
    with rp.init(project="p", root=tmp_path, console=False, system_metrics=False) as run:
        for step in range(5):
            run.log({"loss": float(step)}, step=step)
        run_id = run.id
    with rp.init(project="p", root=tmp_path, resume=run_id, console=False, system_metrics=False) as run:
        for step in range(5, 10):
            run.log({"loss": float(step)}, step=step)
    store = SQLiteStore(tmp_path / "runpoint.db")
    assert list(store.read_metric(run_id, "loss").steps) == list(range(10))
    import sqlite3

    with sqlite3.connect(tmp_path / "runpoint.db") as conn:
        sequences = [row[0] for row in conn.execute("SELECT sequence FROM applied_batches WHERE run_id = ?", (run_id,))]
    assert sequences and {s >> 40 for s in sequences} == {0, 1}  # one range per attempt
    store.close()
