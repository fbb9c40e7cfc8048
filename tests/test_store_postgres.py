"""What is particular to the PostgreSQL store: migrations at open, writers in several processes, dropped connections.

The shared behaviour is in test_store_contract.py and test_store_idempotency.py, which
run against PostgreSQL too.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from array import array

import psycopg
import pytest

from runpoint.errors import SchemaVersionError, StoreError
from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch, open_store
from runpoint.store.postgres import PostgresStore
from runpoint.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION

from .conftest import REPO


def _record(run_id: str) -> RunRecord:
    now = time.time()
    return RunRecord(id=run_id, project="p", name=run_id, status=RunStatus.RUNNING, created_at=now,
                     heartbeat_at=now, dir=f"p/{run_id}")


def _batch(sequence: int, steps: list[int]) -> WriteBatch:
    series = MetricSeries(array("q", steps), array("d", [float(s) for s in steps]), array("d", [1.0] * len(steps)))
    return WriteBatch(metrics={"loss": series}, sequence=sequence)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
    return {row[0] for row in rows}


def test_an_empty_database_is_migrated_at_open_once_and_a_newer_one_refused(postgres_empty_url) -> None:
    with pytest.raises(StoreError, match="no runpoint store"):
        open_store(postgres_empty_url, create=False)
    assert _tables(postgres_empty_url) == set()  # refusing created nothing
    store = open_store(postgres_empty_url.replace("postgresql://", "postgres://"))
    assert isinstance(store, PostgresStore) and "@" not in store.location  # no user name in what is shown
    store.create_run(_record("a"))
    store.close()
    assert {"runs", "metric_chunks", "metric_stats", "applied_batches", "run_ranks", "checkpoints", "media",
            "schema_version"} <= _tables(postgres_empty_url)
    with psycopg.connect(postgres_empty_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    reopened = open_store(postgres_empty_url, create=False)  # nothing to migrate; the run is there
    assert reopened.get_run("a").id == "a"
    reopened.close()
    with psycopg.connect(postgres_empty_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match="upgrade runpoint") as raised:
        open_store(postgres_empty_url)
    assert raised.value.found == SCHEMA_VERSION + 1 and len(MIGRATIONS) == SCHEMA_VERSION


def test_processes_opening_a_new_database_at_once_migrate_it_once(postgres_empty_url) -> None:
    code = "import sys; from runpoint.store import open_store; open_store(sys.argv[1]).close()"
    procs = [subprocess.Popen([sys.executable, "-c", code, postgres_empty_url], cwd=REPO, stderr=subprocess.PIPE,
                              text=True) for _ in range(3)]
    assert [proc.wait(60) for proc in procs] == [0, 0, 0], [proc.stderr.read() for proc in procs if proc.stderr]
    with psycopg.connect(postgres_empty_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


# Forks two writers from a process that holds a connection already: the children write
# batches of one key of one run at once, each batch twice (a retry); the parent writes
# after they are gone, on the connection it had before the fork.
WRITERS = textwrap.dedent("""
    import os, sys
    from array import array
    from runpoint.store import MetricSeries, WriteBatch, open_store

    store = open_store(sys.argv[1])
    BATCHES, POINTS = 40, 150

    def batch(writer, index):
        first = (writer * BATCHES + index) * POINTS
        steps = list(range(first, first + POINTS))
        series = MetricSeries(array("q", steps), array("d", [float(s) for s in steps]), array("d", [1.0] * POINTS))
        return WriteBatch(metrics={"loss": series}, summary={f"w{writer}": index}, sequence=writer * 1000 + index)

    store.write("a", batch(9, 0))  # the parent's connection is open when it forks
    children = []
    for writer in (0, 1):
        pid = os.fork()
        if pid == 0:
            for index in range(BATCHES):
                store.write("a", batch(writer, index))
                store.write("a", batch(writer, index))  # a retry of the same batch
            sys.exit(0)  # a normal exit: the inherited connection is collected in the child
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    store.write("a", batch(9, 1))  # still usable: the children did not end the parent's session
    print("children", codes)
""")


def test_two_processes_writing_one_run_at_once_store_every_point_once(postgres_url, tmp_path) -> None:
    setup = open_store(postgres_url)
    setup.create_run(_record("a"))
    script = tmp_path / "writers.py"
    script.write_text(WRITERS)
    result = subprocess.run([sys.executable, str(script), postgres_url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "children [0, 0]" in result.stdout, result.stdout + result.stderr
    series = setup.read_metric("a", "loss")
    batches, points = 40, 150
    expected = sorted([*range(2 * batches * points), *range(9 * batches * points, 9 * batches * points + 2 * points)])
    assert sorted(series.steps) == expected  # every point once: none lost, none twice
    assert setup.metric_stats("a")["loss"].count == len(expected)
    assert setup.get_summary("a") == {"w0": batches - 1, "w1": batches - 1, "w9": 1}
    with psycopg.connect(postgres_url) as conn:
        chunk_points = conn.execute("SELECT sum(n), count(*) FROM metric_chunks").fetchone()
    assert chunk_points is not None and chunk_points[0] == len(expected)
    assert chunk_points[1] < 2 * batches  # small chunks were merged as points arrived
    setup.close()


def _backend_pid(store: PostgresStore) -> int:
    row = store._conn().execute("SELECT pg_backend_pid() AS pid").fetchone()
    assert row is not None
    return int(row["pid"])


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_a_batch_retried_after_a_dropped_connection_is_stored_once(postgres_url) -> None:
    store = open_store(postgres_url)
    assert isinstance(store, PostgresStore)
    store.create_run(_record("a"))
    # 1. applied, then the connection drops before the writer hears back: the retry is skipped
    store.write("a", _batch(1, [0, 1]))
    _terminate(postgres_url, _backend_pid(store))
    with pytest.raises(StoreError):
        store.write("a", _batch(1, [0, 1]))  # the first retry meets the dead connection
    store.write("a", _batch(1, [0, 1]))  # the next one reconnects and finds the batch applied
    # 2. the connection drops inside the batch's transaction (waiting for the run's lock): nothing is kept
    blocker = psycopg.connect(postgres_url)
    blocker.execute("SELECT 1 FROM runs WHERE id = 'a' FOR UPDATE")
    failed: list[BaseException] = []

    def write_batch_two() -> None:
        try:
            store.write("a", _batch(2, [2, 3]))
        except BaseException as exc:  # noqa: BLE001 (the test looks at it)
            failed.append(exc)

    writer = threading.Thread(target=write_batch_two)
    writer.start()
    with psycopg.connect(postgres_url, autocommit=True) as watcher:
        deadline = time.monotonic() + 30
        while not (row := watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).fetchone()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert row is not None, "the batch never waited for the run's lock"
        watcher.execute("SELECT pg_terminate_backend(%s)", (row[0],))
    writer.join(30)
    blocker.rollback()
    blocker.close()
    assert len(failed) == 1 and isinstance(failed[0], StoreError)
    store.write("a", _batch(2, [2, 3]))  # its retry applies it, once
    store.write("a", _batch(2, [2, 3]))
    assert store.read_metric("a", "loss").steps.tolist() == [0, 1, 2, 3]
    assert store.metric_stats("a")["loss"].count == 4
    store.close()
