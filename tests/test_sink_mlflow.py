"""The MLflow sink against a real MLflow store: names, params, ending the run, bounded retries."""

from __future__ import annotations

import http.server
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import runpoint as rp
from runpoint.sinks import MLflowSink, SinkOptions, read_external

pytest.importorskip("mlflow")


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _history(client: Any, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def test_keys_that_clean_to_one_name_stay_apart_and_warn_once(root: Path, mlflow_sqlite: str, caplog) -> None:
    config = {"lr@start": 0.1, "lr#start": 0.2, "plain": 1}
    sink = MLflowSink(tracking_uri=mlflow_sqlite, options=SinkOptions(backoff=0.01))
    with caplog.at_level(logging.WARNING, logger="runpoint"):
        with rp.init(project="names", root=root, config=config, sinks=[sink]) as run:
            for step in range(3):
                run.log({"acc@1": 1.0 + step, "acc#1": 2.0 + step, "loss": 0.5}, step=step)
    record = read_external(run.dir)["mlflow"]
    assert record["status"] == "finished", record  # the config's names did not cost the sink
    mirrored = _client(mlflow_sqlite).get_run(record["external"]["run_id"])
    assert mirrored.info.status == "FINISHED"
    params = mirrored.data.params
    assert params["plain"] == "1"
    assert sorted(v for k, v in params.items() if k.startswith("lr_start_")) == ["0.1", "0.2"]
    acc = sorted(k for k in mirrored.data.metrics if k.startswith("acc_1_"))
    assert len(acc) == 2 and "loss" in mirrored.data.metrics
    client = _client(mlflow_sqlite)
    assert sorted(_history(client, mirrored.info.run_id, acc[0]) + _history(client, mirrored.info.run_id, acc[1])) \
        == sorted([(s, 1.0 + s) for s in range(3)] + [(s, 2.0 + s) for s in range(3)])
    warnings = [r.getMessage() for r in caplog.records if "MLflow does not accept" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("how", ["hung", "too_slow_to_finish"])
def test_the_mlflow_run_ends_when_runpoint_gives_up_on_the_sink(root: Path, mlflow_sqlite: str, how: str) -> None:
    class Stuck(MLflowSink):
        def for_run(self) -> "Stuck":
            return self

        def write(self, batch: Any) -> None:
            threading.Event().wait(None if how == "hung" else 3)
            super().write(batch)

    options = SinkOptions(call_timeout=2 if how == "hung" else 30, finish_timeout=1)
    with rp.init(project="ends", root=root, sinks=[Stuck(tracking_uri=mlflow_sqlite, options=options)],
                 flush_interval=0.05) as run:
        run.log({"loss": 1.0}, step=0)
        if how == "hung":  # log on until the hub has given up on the hung call (2 s), however loaded the machine
            deadline, step = time.monotonic() + 60, 1
            while read_external(run.dir).get("mlflow", {}).get("status") != "disabled":
                assert time.monotonic() < deadline, read_external(run.dir)
                time.sleep(0.2)
                run.log({"loss": 1.0}, step=step)
                step += 1
        else:
            time.sleep(0.2)
            run.log({"loss": 1.0}, step=1)
    record = read_external(run.dir)["mlflow"]
    assert record["status"] == ("disabled" if how == "hung" else "timed_out"), record
    want = "KILLED" if how == "hung" else "FINISHED"  # the run's own status, when it was finishing
    assert _client(mlflow_sqlite).get_run(record["external"]["run_id"]).info.status == want


class _Unavailable(http.server.BaseHTTPRequestHandler):
    """A tracking server that answers 503 to everything (MLflow retries those)."""

    requests: list[float] = []

    def _answer(self) -> None:
        type(self).requests.append(time.monotonic())
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


def test_mlflow_own_retries_end_within_the_call_timeout(root: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Unavailable.requests = []
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}"
        sink = MLflowSink(tracking_uri=uri, options=SinkOptions(call_timeout=8, finish_timeout=1, retries=0))
        run = rp.init(project="retries", root=root, sinks=[sink])
        deadline = time.monotonic() + 20
        while read_external(run.dir).get("mlflow", {}).get("status") != "disabled":
            assert time.monotonic() < deadline, read_external(run.dir)
            time.sleep(0.05)
        record = read_external(run.dir)["mlflow"]
        assert "503" in record["error"] or "Max retries" in record["error"], record
        assert len(_Unavailable.requests) == 3  # start(): 1 + 2 retries (MLflow alone would make 8, over minutes)
        run.finish()
        from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_MAX_RETRIES

        assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 7  # other threads keep MLflow's default
    finally:
        server.shutdown()
