"""Alerts of real runs: run.alert and the default detectors stored through the writer's batches, printed once,
kept after a kill -9 once flushed, a stall seen by a sleeping process, webhook URLs never written whole,
`runpoint alerts`, and the dashboard's JSON."""

from __future__ import annotations

import json
import math
import os
import signal
import time

import pytest

import runpoint as rp
from runpoint.errors import InvalidArgumentError, RunpointError
from runpoint.store import RunStatus, alert_store

from .conftest import cli, start_script, wait_for_line

VICTIM = """
import math, time, runpoint as rp
run = rp.init(project="p", id="victim", console=False, system_metrics=False,
              config={{"experiment": {{"alerts": {{"stall": {{"after_s": {stall}}},
                      "webhooks": [{{"url": "https://hooks.example.com/services/T1/B2/sekrit"}}]}}}}}})
for step in range(50):
    run.log({{"train/loss": 1.0 / (step + 1), "grad/norm": math.inf if step == 30 else 1.0}})
run.alert("checkpoint looks odd", "crc mismatch", level="info")
run.flush()
print("ready", flush=True)
time.sleep(600)  # alive, logging nothing: a stall
"""


def _wait_for(predicate, what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {timeout} s")


def test_alerts_of_a_killed_process_survive_and_a_sleeping_one_is_found_stalled(tmp_path, root, store_at) -> None:
    proc = start_script(tmp_path, root, VICTIM.format(stall=0.5))
    try:
        wait_for_line(proc, "ready")
        alerts = alert_store(store_at())
        stalled = _wait_for(lambda: [a for a in alerts.read_alerts("victim") if a.kind == "stall"], "stall alert")
        assert stalled[0].level == "warning" and stalled[0].step == 49
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = alert_store(store_at()).read_alerts("victim")
    assert [(a.kind, a.level, a.key, a.step) for a in stored] == [
        ("nonfinite", "error", "grad/norm", 30), ("user", "info", None, 49), ("stall", "warning", None, 49)]
    assert stored[1].title == "checkpoint looks odd" and stored[1].text == "crc mismatch"
    stderr = proc.stderr.read()
    assert stderr.count("grad/norm became Infinity at step 30") == 1
    assert stderr.count("runpoint: info alert, run victim: checkpoint looks odd") == 1
    run_dir = root / "p" / "victim"
    for written in (run_dir / "config.yaml", run_dir / "meta.json"):
        assert "sekrit" not in written.read_text() and "T1/B2" not in written.read_text()
    assert "sekrit" not in json.dumps(store_at().get_params("victim"))


def test_run_alert_checks_its_arguments_and_works_only_while_the_run_runs(root, store_at) -> None:
    run = rp.init(project="p", console=False, system_metrics=False, alerts={"spike": {"enabled": False}})
    for bad, argument in [(dict(title=""), "title"), (dict(title=3), "title"), (dict(title="t", level="fatal"), "level"),
                          (dict(title="t", text=None), "text"), (dict(title="x" * 1001), "title")]:
        with pytest.raises(InvalidArgumentError, match=argument):
            run.alert(**bad)
    run.log({"train/loss": 1.0})
    for step in range(1, 40):
        run.log({"train/loss": 100.0 if step == 30 else 1.0, "val/loss": float(step)}, step=step)  # spike off: none
    run.alert("done", level="info")
    run.finish()
    with pytest.raises(RunpointError, match="finished"):
        run.alert("late")
    stored = alert_store(store_at()).read_alerts(run.id)
    assert [(a.kind, a.key) for a in stored] == [("divergence", "val/loss"), ("user", None)]
    assert store_at().get_run(run.id).status is RunStatus.COMPLETED
    with pytest.raises(InvalidArgumentError, match="alerts"):
        rp.init(project="p", console=False, alerts={"spike": {"z_threshold": -1}})
    with pytest.raises(InvalidArgumentError, match="alerts"):
        rp.init(project="p", console=False, alerts="on")


@pytest.mark.slow  # several CLI processes: about 6 s
def test_the_cli_lists_alerts_of_one_run_or_all_by_level(root) -> None:
    with rp.init(project="p", name="first", console=False, system_metrics=False) as first:
        first.log({"train/loss": math.nan})
        first.alert("hello there", level="info")
    with rp.init(project="q", name="second", console=False, system_metrics=False) as second:
        second.alert("second's [b]oops[/b]", "details", level="warning")

    listed = cli(root, "alerts", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["run_id"], r["kind"], r["level"]) for r in rows] == [
        (first.id, "nonfinite", "error"), (first.id, "user", "info"), (second.id, "user", "warning")]
    table = cli(root, "alerts", "--level", "warning")
    assert "second's [b]oops[/b]" in table.stdout and "train/loss became NaN at step 0" in table.stdout
    assert "hello there" not in table.stdout
    assert [r["title"] for r in json.loads(cli(root, "alerts", "first", "--json").stdout)] == [
        "train/loss became NaN at step 0", "hello there"]
    assert json.loads(cli(root, "alerts", "-p", "q", "--json").stdout)[0]["run_id"] == second.id
    assert json.loads(cli(root, "alerts", "-n", "1", "--json").stdout)[0]["run_id"] == second.id
    bad = cli(root, "alerts", "--level", "fatal")
    assert bad.returncode == 1 and bad.stderr.strip() == "runpoint: level: 'fatal' is not one of info, warning, error"
    assert "no alerts of level error or above in run" in cli(root, "alerts", "second", "--level", "error").stderr


def test_the_dashboard_api_counts_alerts_per_run_and_lists_a_run_s(root) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from runpoint.server.app import create_app

    with rp.init(project="p", console=False, system_metrics=False) as run:
        run.alert("a", level="error")
        run.alert("b", "text b")
    with rp.init(project="p", console=False, system_metrics=False) as quiet:
        quiet.log({"train/loss": 1.0})
    client = TestClient(create_app(root, loopback_only=False))
    assert client.get("/api/alerts/counts").json() == {run.id: {"error": 1, "warning": 1}}
    assert client.get("/api/alerts/counts", params={"project": "other"}).json() == {}
    listed = client.get(f"/api/runs/{run.id}/alerts").json()["alerts"]
    assert [(a["title"], a["level"], a["text"]) for a in listed] == [("a", "error", ""), ("b", "warning", "text b")]
    assert [a["title"] for a in client.get(f"/api/runs/{run.id}/alerts", params={"after_id": listed[0]["id"]}).json()["alerts"]] == ["b"]
    assert client.get(f"/api/runs/{quiet.id}/alerts").json() == {"alerts": []}
    assert client.get("/api/runs/nope/alerts").status_code == 404
