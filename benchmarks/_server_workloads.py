"""The four workloads of the team-server benchmark, each against one server, each checked.

Every function takes the server's URL and returns a dict of figures; runpoint's side goes
through ``runpoint.store.open_store(url)`` (the team server's ``HttpStore`` for ``http://``,
or ``PostgresStore`` for a ``postgresql://`` stand-in) and ``runpoint.remote.files.RemoteFiles``,
MLflow's through ``MlflowClient``. A workload whose read-back differs from what was sent raises.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from . import _server_clients as clients

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "benchmark-token"  # the runpoint server is started with it; clients send it as any client would


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "RUNPOINT_TOKEN": TOKEN, "MLFLOW_HTTP_REQUEST_TIMEOUT": "600"}


def run_clients(jobs: list[dict[str, Any]], logdir: Path) -> list[dict[str, Any]]:
    """One process per job; each signals ready and all start on one "go"; their results."""
    processes: list[subprocess.Popen[str]] = []
    try:
        for index, job in enumerate(jobs):
            log = open(logdir / f"client-{job['target']}-{job['kind']}-{index}.log", "w")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "benchmarks._server_clients", json.dumps(job)], cwd=ROOT, env=_env(),
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True))
            log.close()
        for index, (process, job) in enumerate(zip(processes, jobs)):
            line = "-"
            while line and '"ready"' not in line:  # a library may print to stdout first
                line = process.stdout.readline() if process.stdout else ""
            if not line:
                raise RuntimeError(f"a {job['target']} client did not get ready: {_log_tail(logdir, job, index)}")
        for process in processes:
            if process.stdin:
                process.stdin.write("go\n")
                process.stdin.close()
        results = []
        for index, (process, job) in enumerate(zip(processes, jobs)):
            out = process.stdout.read() if process.stdout else ""
            if process.wait() != 0:
                raise RuntimeError(f"a {job['target']} client failed: {_log_tail(logdir, job, index)}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, 9)
                process.wait()


def _log_tail(logdir: Path, job: dict[str, Any], index: int) -> str:
    path = logdir / f"client-{job['target']}-{job['kind']}-{index}.log"
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def _wall(results: list[dict[str, Any]]) -> float:
    """From the first client's start to the last one's end (interpreter start-up and imports left out)."""
    return max(r["end"] for r in results) - min(r["start"] for r in results)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def ingest(target: str, url: str, logdir: Path, *, clients_n: int, keys: int, steps: int, batch_points: int,
           experiment_id: str | None = None) -> dict[str, Any]:
    """``clients_n`` processes, each its own run with ``keys`` x ``steps`` points; all start together."""
    names = [f"train/metric_{k}" for k in range(keys)]
    jobs = [dict(kind="ingest", target=target, url=url, experiment_id=experiment_id, keys=names, steps=steps,
                 batch_points=batch_points, project="ingest", name=f"client-{c}", new_run_id=f"ingest{c:06d}")
            for c in range(clients_n)]
    results = run_clients(jobs, logdir)
    start, end = min(r["start"] for r in results), max(r["end"] for r in results)
    latencies = [s for r in results for s in r["latencies"]]
    points = sum(r["points"] for r in results)
    return {"clients": clients_n, "points": points, "batches": len(latencies), "seconds": end - start,
            "points_per_s": points / (end - start), "p50_batch_ms": _percentile(latencies, 0.5) * 1000,
            "p99_batch_ms": _percentile(latencies, 0.99) * 1000, "max_batch_ms": max(latencies) * 1000,
            "batch_points": keys * max(1, batch_points // keys), "run_ids": [r["run_id"] for r in results],
            "keys": names, "steps": steps}


def check_runpoint_ingest(url: str, figures: dict[str, Any]) -> None:
    """Every point stored exactly once: the counts of every key of every run, read back through ``url``."""
    from runpoint.store import open_store

    store = open_store(url)
    try:
        for run_id in figures["run_ids"]:
            counts = {key: stats.count for key, stats in store.metric_stats(run_id).items()}
            if counts != {key: figures["steps"] for key in figures["keys"]}:
                raise AssertionError(f"run {run_id}: stored counts {counts}, sent {figures['steps']} per key")
        series = store.read_metric(figures["run_ids"][-1], figures["keys"][-1])
        if list(series.steps) != list(range(figures["steps"])):
            raise AssertionError("the steps read back differ from those sent")
    finally:
        store.close()


def check_mlflow_ingest(db_url: str, figures: dict[str, Any]) -> None:
    """MLflow's side, counted in its database: rows, and distinct (run, key, step)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        rows, distinct = conn.execute(
            "SELECT count(*), count(DISTINCT (run_uuid, key, step)) FROM metrics WHERE run_uuid = ANY(%s)",
            (figures["run_ids"],)).fetchone() or (0, 0)
    if rows != figures["points"] or distinct != figures["points"]:
        raise AssertionError(f"MLflow stored {rows} rows ({distinct} distinct points) of {figures['points']} sent")


def runpoint_read(url: str, points: int, repeats: int) -> dict[str, Any]:
    """A run with one metric of ``points`` points, written through ``url``, then read whole."""
    from array import array

    from runpoint.store import (
        MetricSeries,
        RunRecord,
        RunStatus,
        WriteBatch,
        open_store,
    )

    store = open_store(url)
    try:
        now = time.time()
        store.create_run(RunRecord(id="readback0001", project="read", name="million", status=RunStatus.COMPLETED,
                                   created_at=now, heartbeat_at=now, dir="read/readback0001", ended_at=now))
        started = time.perf_counter()
        for first in range(0, points, 50_000):
            steps = range(first, min(points, first + 50_000))
            series = MetricSeries(array("q", steps), array("d", (s * 1e-6 for s in steps)), array("d", [now]) * len(steps))
            store.write("readback0001", WriteBatch(metrics={"train/loss": series}, sequence=first // 50_000 + 1))
        setup = time.perf_counter() - started
        got: list[MetricSeries] = []
        seconds = _best(repeats, lambda: got.append(store.read_metric("readback0001", "train/loss")))
        if len(got[-1]) != points or got[-1].steps[-1] != points - 1 or got[-1].values[7] != 7e-6:
            raise AssertionError(f"read back {len(got[-1])} points of {points}")
        return {"points": points, "seconds": seconds, "points_per_s": points / seconds, "setup_s": setup}
    finally:
        store.close()


def mlflow_read(url: str, experiment_id: str, points: int, repeats: int, logdir: Path, writers: int) -> dict[str, Any]:
    """The same through MLflow: ``writers`` processes log disjoint step ranges of one metric, then one reads it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id, run_name="million").info.run_id
    share = -(-points // writers)
    jobs = [dict(kind="ingest", target="mlflow", url=url, experiment_id=experiment_id, run_id=run_id, keys=["train/loss"],
                 first_step=w * share, steps=min(share, points - w * share), batch_points=1000) for w in range(writers)]
    setup = _wall(run_clients([job for job in jobs if job["steps"] > 0], logdir))
    got: list[Any] = []
    seconds = _best(repeats, lambda: got.append(client.get_metric_history(run_id, "train/loss")))
    if len(got[-1]) != points:
        raise AssertionError(f"MLflow read back {len(got[-1])} points of {points}")
    return {"points": points, "seconds": seconds, "points_per_s": points / seconds, "setup_s": setup}


def create_search_runs(target: str, url: str, runs: int, processes: int, logdir: Path,
                       experiment_id: str | None = None) -> float:
    """The search data set (``runs`` runs) created by ``processes`` clients started together; the wall seconds."""
    share = -(-runs // processes)
    jobs = [dict(kind="runs", target=target, url=url, experiment_id=experiment_id, project="search", start=p * share,
                 count=min(share, runs - p * share)) for p in range(processes) if p * share < runs]
    return _wall(run_clients(jobs, logdir))


def expected_search(runs: int, limit: int) -> list[str]:
    """Names of the runs with lr > 0.01 and loss < 0.5, newest first, at most ``limit``."""
    hits = [i for i in range(runs) if clients.search_params(i)["lr"] > 0.01 and clients.search_metrics(i)["loss"] < 0.5]
    return [f"trial-{i:05d}" for i in sorted(hits, reverse=True)[:limit]]


def runpoint_search(url: str, runs: int, limit: int, repeats: int) -> dict[str, Any]:
    from runpoint.store import Condition, RunQuery, open_store

    query = RunQuery(project="search", conditions=(Condition("params", "lr", ">", 0.01), Condition("metrics", "loss", "<", 0.5)),
                     newest_first=True, limit=limit)
    store = open_store(url)
    try:
        names = [run.name for run in store.list_runs(query)]
        times = _times(repeats, lambda: store.list_runs(query))
    finally:
        store.close()
    if names != expected_search(runs, limit):
        raise AssertionError(f"runpoint's search returned {names[:5]}..., not the expected runs")
    return {"median_ms": statistics.median(times) * 1000, "best_ms": min(times) * 1000, "rows": len(names),
            "query": "list_runs(RunQuery(project, conditions=(params.lr > 0.01, metrics.loss < 0.5), limit))"}


MLFLOW_FILTER = "params.lr = '0.1' AND metrics.loss < 0.5"  # MLflow compares params as strings, by = != LIKE only


def mlflow_search(url: str, experiment_id: str, runs: int, limit: int, repeats: int) -> dict[str, Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)

    def search() -> list[Any]:
        return list(client.search_runs([experiment_id], filter_string=MLFLOW_FILTER,
                                       order_by=["attributes.start_time DESC"], max_results=limit))

    names = [run.info.run_name for run in search()]
    times = _times(repeats, search)
    if names != expected_search(runs, limit):
        raise AssertionError(f"MLflow's search returned {names[:5]}..., not the expected runs")
    return {"median_ms": statistics.median(times) * 1000, "best_ms": min(times) * 1000, "rows": len(names),
            "query": f"search_runs(filter_string={MLFLOW_FILTER!r}, order_by start_time DESC, max_results)"}


def _times(repeats: int, fn: Callable[[], Any]) -> list[float]:
    fn()  # warm: connections, caches
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return times


def _best(repeats: int, fn: Callable[[], Any]) -> float:
    return min(_times(repeats, fn)) if repeats > 1 else _times(1, fn)[0]


def parallel(fn: Callable[[Any], Any], items: list[Any], threads: int) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))
