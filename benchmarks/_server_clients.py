"""The client processes of the team-server benchmark: ``python -m benchmarks._server_clients '<json job>'``.

A job says which server (``runpoint``: a runpoint store URL opened with ``open_store``, the
team server's ``http://`` or, as a stand-in, ``postgresql://``; ``mlflow``: an MLflow
tracking URL) and what to do:

- ``ingest``: create a run (or use ``run_id``), print ``{"ready": run_id}``, wait for a line
  on stdin (every client starts together), then send ``keys`` x ``steps`` points in batches
  of ``batch_points`` and print the wall clock at start and end and each batch's latency.
- ``runs``: create runs ``start`` .. ``start + count`` of the search data set (10 params and
  5 one-point metrics each), the same on both servers, starting on "go" as ``ingest`` does.

Both servers get the same data: :func:`search_params` and :func:`search_metrics` define it.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from array import array
from typing import Any

BASE_TIME = 1_700_000_000.0  # created_at / start_time of the search runs: run i is BASE_TIME + i
LEARNING_RATES = (0.0001, 0.0003, 0.001, 0.003, 0.1)  # lr > 0.01: exactly lr = 0.1, which MLflow can filter


def search_params(i: int) -> dict[str, Any]:
    return {"lr": LEARNING_RATES[i % 5], "optimizer": ("adam", "sgd", "adamw")[i % 3], "batch_size": 32 << (i % 4),
            "width": 64 * (1 + i % 8), "depth": 2 + i % 6, "dropout": round(0.1 * (i % 5), 1), "seed": i,
            "warmup": 100 * (i % 10), "weight_decay": (0.0, 0.01, 0.1)[i % 3], "dataset": f"shard-{i % 16}"}


def search_metrics(i: int) -> dict[str, float]:
    loss = ((i * 7919) % 1000) / 1000  # spread over [0, 1) without a pattern in i
    return {"loss": loss, "acc": 1 - loss / 2, "val_loss": loss * 1.1, "val_acc": 1 - loss / 1.8, "grad_norm": 1 + i % 7}


def _values(key_index: int, steps: range) -> array:
    return array("d", (math.exp(-s / 5e4) + 0.01 * key_index + 1e-3 * math.sin(s) for s in steps))


def _chunks(keys: list[str], first: int, steps: int, batch_points: int) -> list[tuple[int, int]]:
    """Step ranges, each holding about ``batch_points`` points over all keys."""
    per_batch = max(1, batch_points // len(keys))
    return [(start, min(first + steps, start + per_batch)) for start in range(first, first + steps, per_batch)]


class _Runpoint:
    def __init__(self, job: dict[str, Any]) -> None:
        from runpoint.store import open_store

        self.store = open_store(job["url"])
        self.sequence = job.get("sequence_base", 0)

    def create(self, run_id: str, project: str, name: str, created_at: float) -> str:
        from runpoint.store import RunRecord, RunStatus

        self.store.create_run(RunRecord(id=run_id, project=project, name=name, status=RunStatus.RUNNING,
                                        created_at=created_at, heartbeat_at=created_at, dir=f"{project}/{run_id}"))
        return run_id

    def search_run(self, i: int, project: str) -> None:
        """Two requests, as for MLflow: the run with its params, then its metrics."""
        from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch

        run_id, created = f"s{i:011d}", BASE_TIME + i
        self.store.create_run(RunRecord(id=run_id, project=project, name=f"trial-{i:05d}", status=RunStatus.COMPLETED,
                                        created_at=created, heartbeat_at=created, ended_at=created + 60,
                                        dir=f"{project}/{run_id}"), params=search_params(i))
        one = array("q", [0]), array("d", [created])
        metrics = {key: MetricSeries(one[0], array("d", [value]), one[1]) for key, value in search_metrics(i).items()}
        self.store.write(run_id, WriteBatch(metrics=metrics))

    def send(self, run_id: str, keys: list[str], first: int, last: int, now: float) -> None:
        from runpoint.store import MetricSeries, WriteBatch

        steps = range(first, last)
        times = array("d", [now]) * len(steps)
        metrics = {key: MetricSeries(array("q", steps), _values(k, steps), times) for k, key in enumerate(keys)}
        self.sequence += 1
        self.store.write(run_id, WriteBatch(metrics=metrics, sequence=self.sequence))


class _MLflow:
    def __init__(self, job: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=job["url"])
        self.experiment_id = job["experiment_id"]

    def create(self, run_id: str, project: str, name: str, created_at: float) -> str:
        run = self.client.create_run(self.experiment_id, start_time=int(created_at * 1000), run_name=name)
        return str(run.info.run_id)

    def search_run(self, i: int, project: str) -> None:
        """Two requests: the run, then its params and metrics in one log_batch."""
        from mlflow.entities import Metric, Param

        created = BASE_TIME + i
        run = self.client.create_run(self.experiment_id, start_time=int(created * 1000), run_name=f"trial-{i:05d}")
        self.client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in search_params(i).items()],
                              metrics=[Metric(k, v, int(created * 1000), 0) for k, v in search_metrics(i).items()])

    def send(self, run_id: str, keys: list[str], first: int, last: int, now: float) -> None:
        from mlflow.entities import Metric

        millis = int(now * 1000)
        metrics = [Metric(key, value, millis, step) for k, key in enumerate(keys)
                   for step, value in zip(range(first, last), _values(k, range(first, last)))]
        self.client.log_batch(run_id, metrics=metrics)


def _client(job: dict[str, Any]) -> _Runpoint | _MLflow:
    return _Runpoint(job) if job["target"] == "runpoint" else _MLflow(job)


def ingest(job: dict[str, Any]) -> dict[str, Any]:
    client = _client(job)
    keys = job["keys"]
    run_id = job.get("run_id") or client.create(job["new_run_id"], job["project"], job["name"], time.time())
    batches = _chunks(keys, job.get("first_step", 0), job["steps"], job["batch_points"])
    print(json.dumps({"ready": run_id}), flush=True)
    sys.stdin.readline()  # "go": every client starts together
    latencies = []
    start = time.time()
    for first, last in batches:
        began = time.perf_counter()
        client.send(run_id, keys, first, last, time.time())
        latencies.append(time.perf_counter() - began)
    end = time.time()
    return {"run_id": run_id, "start": start, "end": end, "latencies": latencies,
            "points": len(keys) * job["steps"]}


def create_runs(job: dict[str, Any]) -> dict[str, Any]:
    client = _client(job)
    print(json.dumps({"ready": None}), flush=True)
    sys.stdin.readline()
    start = time.time()
    for i in range(job["start"], job["start"] + job["count"]):
        client.search_run(i, job["project"])
    return {"start": start, "end": time.time(), "runs": job["count"]}


def main() -> None:
    job = json.loads(sys.argv[1])
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    result = {"ingest": ingest, "runs": create_runs}[job["kind"]](job)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
