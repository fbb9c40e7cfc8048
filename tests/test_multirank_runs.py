"""One run per multi-rank job: real gloo ranks (tests/multirank.py) recording one run."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import time

import pytest
from typer.testing import CliRunner

import runpoint as rp
from runpoint.errors import InvalidArgumentError
from runpoint.store import RankRecord, RunQuery, RunStatus
from runpoint.store.sqlite import SQLiteStore
from runpoint.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION

from .multirank import launch, torchrun


def _store(root) -> SQLiteStore:
    return SQLiteStore(root / "runpoint.db", create=False)


def _wait_until(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_four_ranks_record_one_run(tmp_path, root):
    job = launch("""
        import os, time
        import runpoint as rp
        run = rp.init(project="ranks", config={"lr": 0.1}, system_metrics=False)
        print("RUN", run.id, run.rank, run.world_size, flush=True)
        for step in range(3):
            run.log({"loss": step + run.rank / 10})
        run.log({"wait": float(run.rank)}, ranks="all")
        run.summary["where"] = run.rank
        print(f"hello from rank {run.rank} at step {run.step}")
        if run.rank == 0:
            run.finish()
            print("rank 0 finished", flush=True)
        while not os.path.exists("go"):  # rank 0 stays too: it hosts the group's store
            time.sleep(0.02)
        if run.rank:
            print("summary here", run.summary["where"])
            run.finish()
    """, 4, tmp_path, root)
    job.wait_for(0, "rank 0 finished")
    for rank in range(1, 4):
        job.wait_for(rank, "hello from rank")
    store = _store(root)
    (run,) = store.list_runs()
    assert run.status is RunStatus.RUNNING  # rank 0 finished first: the others still run
    ranks = store.list_ranks(run.id)
    assert [(r.rank, r.status) for r in ranks] == [(0, RunStatus.COMPLETED)] + [(n, RunStatus.RUNNING) for n in (1, 2, 3)]
    assert [r.pid for r in ranks] == job.pids
    (tmp_path / "go").touch()
    assert job.wait(60) == [0, 0, 0, 0], job.logs()
    for rank in range(4):
        assert f"RUN {run.id} {rank} 4" in job.log(rank)
        assert "hello from rank" in job.log(rank) and "at step 4" in job.log(rank)
    assert "summary here 1" in job.log(1)  # another rank's summary stays in that rank
    run = store.get_run(run.id)
    assert run.status is RunStatus.COMPLETED and run.error is None
    assert store.metric_keys(run.id) == ["loss", "wait", "wait@rank1", "wait@rank2", "wait@rank3"]
    assert list(store.read_metric(run.id, "loss").values) == [0.0, 1.0, 2.0]  # rank 0's points only
    assert [(s.steps[0], s.values[0]) for s in (store.read_metric(run.id, f"wait@rank{n}") for n in (1, 2, 3))] == [
        (3, 1.0), (3, 2.0), (3, 3.0)]
    assert store.get_summary(run.id) == {"where": 0}
    logs = root / "ranks" / run.id / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["console.log", "console.rank1.log", "console.rank2.log",
                                                      "console.rank3.log", "runpoint.log", "runpoint.rank1.log",
                                                      "runpoint.rank2.log", "runpoint.rank3.log"]
    assert "hello from rank 0" in (logs / "console.log").read_text()
    assert "hello from rank 2" in (logs / "console.rank2.log").read_text()
    assert "hello from rank 0" not in (logs / "console.rank2.log").read_text()
    meta = json.loads((root / "ranks" / run.id / "meta.json").read_text())
    section = meta["distributed"]
    assert (section["world_size"], section["backend"], section["restart"]) == (4, "gloo", 0)
    assert [(r["rank"], r["local_rank"], r["pid"]) for r in section["ranks"]] == [(n, n, job.pids[n]) for n in range(4)]
    from runpoint.cli.main import app

    shown = CliRunner().invoke(app, ["metrics", run.id, "wait@rank2", "--root", str(root), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["values"] == [2.0]
    listed = CliRunner().invoke(app, ["metrics", run.id, "--root", str(root), "--json"])
    assert "wait@rank3" in json.loads(listed.output)


def test_a_failing_rank_fails_the_run_and_the_first_cause_stays(tmp_path, root):
    job = launch("""
        import time
        import runpoint as rp
        from runpoint.store import RunStatus
        run = rp.init(project="ranks", config={"lr": 0.1}, system_metrics=False, log_ranks="all")
        run.log({"loss": 1.0 + run.rank})
        run.flush()
        def wait_for_failure():
            while run.store.get_run(run.id).status is RunStatus.RUNNING:
                time.sleep(0.02)
        if run.rank == 1:
            raise ValueError("boom on rank 1")
        wait_for_failure()
        if run.rank == 2:
            raise KeyError("later on rank 2")
        run.finish()
    """, 3, tmp_path, root)
    assert job.wait(60) == [0, 1, 1], job.logs()
    store = _store(root)
    (run,) = store.list_runs()
    assert run.status is RunStatus.FAILED
    assert run.error.startswith("rank 1: Traceback"), run.error
    assert "ValueError: boom on rank 1" in run.error and "rank 2" not in run.error
    ranks = store.list_ranks(run.id)
    assert [r.status for r in ranks] == [RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.FAILED]
    assert "KeyError: 'later on rank 2'" in ranks[2].error
    assert store.metric_keys(run.id) == ["loss", "loss@rank1", "loss@rank2"]  # log_ranks="all"


def test_a_killed_rank_is_named_when_the_others_are_stopped(tmp_path, root):
    job = launch("""
        import time
        import runpoint as rp
        run = rp.init(project="ranks", system_metrics=False)
        run.log({"loss": 1.0})
        print("ready", flush=True)
        time.sleep(120)
    """, 3, tmp_path, root)
    for rank in range(3):
        job.wait_for(rank, "ready")
    store = _store(root)
    (run,) = store.list_runs()
    _wait_until(lambda: len(store.list_ranks(run.id)) == 3, "every rank's row")
    job.kill(1, signal.SIGKILL)
    _wait_until(lambda: not job.alive(1), "rank 1 to die")
    job.kill(0, signal.SIGTERM)
    job.kill(2, signal.SIGTERM)
    codes = job.wait(60)
    assert codes[1] == -signal.SIGKILL and codes[0] == codes[2] == 143, (codes, job.logs())
    run = store.get_run(run.id)
    assert run.status is RunStatus.CRASHED
    assert run.error == f"rank 1 (pid {job.pids[1]} on {socket.gethostname()}) died without finishing"
    assert [r.status for r in store.list_ranks(run.id)] == [RunStatus.KILLED, RunStatus.RUNNING, RunStatus.KILLED]
    from runpoint.cli.main import app

    shown = CliRunner().invoke(app, ["show", run.id, "--root", str(root), "--json"])
    ranks = json.loads(shown.stdout)["ranks"]
    assert [(r["rank"], r["pid"], r["status"]) for r in ranks] == [
        (rank, job.pids[rank], status) for rank, status in enumerate(("killed", "running", "killed"))]
    printed = CliRunner().invoke(app, ["show", run.id, "--root", str(root)], env={"COLUMNS": "200"}).stdout
    assert "ranks (3)" in printed
    assert re.search(rf"^\s*1\s+{re.escape(socket.gethostname())}\s+{job.pids[1]}\s+running\b", printed, re.M), printed


def test_without_a_group_the_job_id_names_the_run_then_every_rank_resumes_latest(tmp_path, root):
    code = """
        import runpoint as rp
        run = rp.init(project="ranks", config={"lr": 0.1}, system_metrics=False, resume=RESUME)
        print("RUN", run.id, run.resume_count, run.step, flush=True)
        run.log({"loss": float(run.rank)})
    """
    job = launch(code.replace("RESUME", "None"), 3, tmp_path, root, init_group=False, job_id="job-1", name="first")
    assert job.wait(60) == [0, 0, 0], job.logs()
    store = _store(root)
    (run,) = store.list_runs()
    assert all(f"RUN {run.id} 0 0" in job.log(rank) for rank in range(3))
    assert run.status is RunStatus.COMPLETED
    assert store.read_metric(run.id, "loss").values.tolist() == [0.0]
    again = launch(code.replace("RESUME", "'latest'"), 3, tmp_path, root, name="second")
    assert again.wait(60) == [0, 0, 0], again.logs()
    assert all(f"RUN {run.id} 1 1" in again.log(rank) for rank in range(3)), again.logs()
    run = store.get_run(run.id)
    assert (run.status, run.resume_count, store.count_runs()) == (RunStatus.COMPLETED, 1, 1)
    assert (root / "ranks" / run.id / "logs" / "console_resume_1.rank2.log").exists()
    assert [r.job.split("/")[1] for r in store.list_ranks(run.id)] == ["0", "0", "0"]


def test_different_configs_raise_on_every_rank_and_create_nothing(tmp_path, root):
    job = launch("""
        import runpoint as rp
        from runpoint.distributed import current
        rank = current().rank
        try:
            rp.init(project="ranks", config={"lr": 0.2 if rank == 2 else 0.1, "seed": 7 if rank == 1 else 0,
                                             "depth": 3}, system_metrics=False)
        except rp.errors.InvalidArgumentError as exc:
            print("ERROR", exc, flush=True)
    """, 3, tmp_path, root)
    assert job.wait(60) == [0, 0, 0], job.logs()
    for rank in range(3):
        log = job.log(rank)
        assert "ERROR" in log and "ranks 1, 2 differ from rank 0" in log, log
        assert "rank 1 differs in seed (rank 0: 0, rank 1: 7)" in log and "rank 2 differs in lr" in log
    assert _store(root).count_runs() == 0
    assert not (root / "ranks").exists()


def test_without_a_group_or_an_id_the_ranks_are_told_what_to_do(root, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    with pytest.raises(InvalidArgumentError, match="init_process_group before rp.init.*or pass the same id="):
        rp.init(project="ranks", system_metrics=False)


def test_a_schema_2_root_is_upgraded_to_the_current_schema(tmp_path):
    path = tmp_path / "runpoint.db"
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[1](conn)
    MIGRATIONS[2](conn)
    conn.execute("PRAGMA user_version = 2")
    conn.execute("INSERT INTO runs (id, project, name, status, dir, created_at, heartbeat_at)"
                 " VALUES ('a', 'p', 'a', 'running', 'p/a', 1.0, 1.0)")
    conn.close()
    store = SQLiteStore(path, create=False)
    assert store._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
    assert store.get_run("a").name == "a" and store.list_ranks("a") == []
    store.register_rank(RankRecord(run_id="a", rank=1, host="h", pid=5, started_at=2.0, heartbeat_at=2.0, job="j/0"))
    store.set_rank_status("a", 1, RunStatus.FAILED, error="x", ended_at=3.0)
    (rank,) = store.list_ranks("a")
    assert (rank.rank, rank.status, rank.error, rank.ended_at, rank.job) == (1, RunStatus.FAILED, "x", 3.0, "j/0")
    store.delete_run("a")
    assert store._conn().execute("SELECT count(*) FROM run_ranks").fetchone()[0] == 0
    tables = {row[0] for row in store._conn().execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"models", "model_versions", "model_aliases", "model_alias_events", "alerts"} <= tables
    store.close()


@pytest.mark.slow  # real torchrun costs ~9 s; the other multi-rank tests fork the same ranks from the fork server
def test_under_torchrun(tmp_path, root):
    result = torchrun(tmp_path, root, """
        import torch.distributed as dist
        import runpoint as rp
        dist.init_process_group("gloo")
        with rp.init(project="ranks", config={"lr": 0.1}, system_metrics=False) as run:
            run.log({"loss": 0.5}, ranks="all")
            print("RUN", run.id, run.rank)
        dist.destroy_process_group()
    """, 2)
    assert result.returncode == 0, result.stdout + result.stderr
    store = _store(root)
    (run,) = store.list_runs()
    assert run.status is RunStatus.COMPLETED
    assert [r.status for r in store.list_ranks(run.id)] == [RunStatus.COMPLETED] * 2
    assert store.metric_keys(run.id) == ["loss", "loss@rank1"]
    meta = json.loads((root / "ranks" / run.id / "meta.json").read_text())
    assert meta["distributed"]["job_id"] and len(meta["distributed"]["ranks"]) == 2


def test_rp_init_on_rank_zero_alone_does_not_wait_for_the_others_and_a_late_rank_with_another_config_fails_the_run(
        tmp_path, root):
    job = launch("""
        import time
        import runpoint as rp
        from runpoint.distributed import current
        rank = current().rank
        if rank == 0:
            with rp.init(project="alone", config={"lr": 0.1}, system_metrics=False) as run:
                run.log({"loss": 1.0})
                print("RUN", run.id, flush=True)
        dist.barrier()  # rank 0's run is finished: a rank that calls rp.init now is late
        if rank == 0:
            with rp.init(project="late", config={"lr": 0.1}, system_metrics=False) as run:
                print("LATE", run.id, flush=True)
                dist.barrier()
                time.sleep(1.0)
        else:
            time.sleep(1.0)
            try:
                rp.init(project="late", config={"lr": 0.3}, system_metrics=False)
            except rp.errors.InvalidArgumentError as exc:
                print("ERROR", exc, flush=True)
            dist.barrier()
    """, 2, tmp_path, root, env={"RUNPOINT_RANK_ARRIVAL_WAIT": "0.2"})
    assert job.wait(60) == [0, 0], job.logs()
    store = _store(root)
    alone = store.list_runs(RunQuery(project="alone"))
    assert [run.status for run in alone] == [RunStatus.COMPLETED]
    assert store.read_metric(alone[0].id, "loss").values.tolist() == [1.0]
    assert "rank 1 differs in lr (rank 0: 0.1, rank 1: 0.3)" in job.log(1), job.logs()
    (late,) = store.list_runs(RunQuery(project="late"))
    assert late.status is RunStatus.FAILED  # rank 1 said why; rank 0's clean exit does not overwrite it
    assert late.error.startswith("rank 1: the ranks of this job were given different configs"), late.error
