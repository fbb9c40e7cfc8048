"""Runs stored in PostgreSQL, served by the dashboard's API as runs of a local root are (the server side of issue 16)."""

from __future__ import annotations

import json
import time
from array import array

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import runpoint as rp
from runpoint.cli.main import app as cli_app
from runpoint.errors import InvalidArgumentError
from runpoint.server.app import create_app
from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch, open_store


def _fill(url: str) -> None:
    store = open_store(url)
    now = time.time()
    store.create_run(RunRecord(id="pg1", project="team", name="shared-run", status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir="team/pg1", host="elsewhere", pid=1), {"lr": 0.1, "api_key": "********"})
    steps = list(range(5000))
    store.write("pg1", WriteBatch(metrics={"train/loss": MetricSeries(
        array("q", steps), array("d", [1.0 / (s + 1) for s in steps]), array("d", [now + s for s in steps]))},
        summary={"best": 0.5}))
    store.set_status("pg1", RunStatus.COMPLETED, ended_at=now + 10)
    store.close()


def test_the_cli_and_the_dashboard_api_read_runs_from_postgresql(postgres_url: str) -> None:
    _fill(postgres_url)
    with TestClient(create_app(postgres_url, loopback_only=False)) as client:
        (run,) = client.get("/api/runs").json()["runs"]
        assert (run["id"], run["status"], run["name"], run["duration_s"]) == ("pg1", "completed", "shared-run", 10.0)
        details = client.get("/api/runs/pg1").json()
        assert details["params"] == {"lr": 0.1, "api_key": "********"} and details["summary"]["best"] == 0.5
        series = client.get("/api/runs/pg1/series", params={"key": "train/loss", "points": 100}).json()
        # min and max per bucket, each at its step: the first point (the largest) and the last survive
        assert len(series["x"]) <= 2 * 100 and len(series["bucket_mean"]) == 100
        assert (series["x"][0], series["y"][0]) == (0.0, 1.0)
        assert (series["x"][-1], series["y"][-1]) == (4999.0, 1.0 / 5000)


def test_the_cli_reads_a_postgresql_root_and_recording_into_a_url_is_refused_clearly(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    _fill(postgres_url)
    runner = CliRunner()
    listed = runner.invoke(cli_app, ["ls", "--root", postgres_url, "--json"])
    assert listed.exit_code == 0, listed.output
    assert [run["id"] for run in json.loads(listed.stdout)] == ["pg1"]
    metric = runner.invoke(cli_app, ["metrics", "pg1", "train/loss", "--root", postgres_url, "--json"])
    assert metric.exit_code == 0, metric.output
    points = json.loads(metric.stdout)
    assert points["steps"] == list(range(5000)) and points["values"][:2] == [1.0, 0.5]
    monkeypatch.setenv("RUNPOINT_ROOT", postgres_url)
    shown = runner.invoke(cli_app, ["show", "pg1", "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["summary"] == {"best": 0.5}

    monkeypatch.chdir(tmp_path)
    secret = postgres_url.replace("runpoint@", "runpoint:hunter2@")
    with pytest.raises(InvalidArgumentError, match="is a URL: runs are recorded into a directory") as refused:
        rp.init(project="team", root=secret, system_metrics=False)
    assert "hunter2" not in str(refused.value)
    with pytest.raises(InvalidArgumentError, match="is a URL"):
        rp.init(project="team", system_metrics=False)  # $RUNPOINT_ROOT is the URL
    assert list(tmp_path.iterdir()) == []  # no directory named "postgresql:" was made
