"""``/metrics``: a real ``runpoint ui`` and the team server over PostgreSQL, scraped and parsed with prometheus_client."""

from __future__ import annotations

import os
import socket
import time
from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch, open_store  # noqa: E402
from runpoint.store.base import AlertRecord, AlertStore  # noqa: E402

from .dashboard_fixtures import running_server  # noqa: E402

ODD_NAME = 'quote " back \\ new\nline'


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Family name (as the parser names it) -> [(labels, value)] of every sample."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def _by_run(samples: list[tuple[dict[str, str], float]], run_id: str, **labels: str) -> list[float]:
    return [value for found, value in samples if found["run"] == run_id and all(found[k] == v for k, v in labels.items())]


def _live_run(store: Any, project: str, name: str, heartbeat_age: float = 0.0) -> str:
    """A ``running`` run of this (live) process, recorded straight into ``store``; returns its id."""
    import secrets

    run_id = "p" + secrets.token_hex(6)
    now = time.time()
    store.create_run(RunRecord(id=run_id, project=project, name=name, status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now - heartbeat_age, dir=f"{project}/{run_id}", host=socket.gethostname(),
                               pid=os.getpid()))
    return run_id


def _two_steps_a_second(store: Any, run_id: str, key: str = "train/loss", points: int = 200) -> None:
    """``points`` points of ``key`` at steps 0, 1, ... logged half a second apart: 2 steps/s, last value 0.25."""
    steps = array("q", range(points))
    times = array("d", (1_700_000_000.0 + 0.5 * s for s in steps))
    values = array("d", (1.0 / (1 + s) for s in steps))
    values[-1] = 0.25
    store.write(run_id, WriteBatch(metrics={key: MetricSeries(steps, values, times)}))


def _record_runs(root: Path) -> dict[str, str]:
    """A live run logging through runpoint with checkpoints, an odd-named live run, ended runs of two projects."""
    import runpoint as rp

    ids: dict[str, str] = {}
    for project, name in (("vision", "done-1"), ("vision", "done-2"), ("nlp", "done-3")):
        with rp.init(project=project, name=name, root=root, console=False, system_metrics=False) as run:
            run.log({"train/loss": 1.0}, step=0)
            ids[name] = run.id
    with pytest.raises(RuntimeError):
        with rp.init(project="nlp", name="broken", root=root, console=False, system_metrics=False) as run:
            raise RuntimeError("diverged")
    store = open_store(root)
    try:
        ids["odd"] = _live_run(store, "vision", ODD_NAME)
        _two_steps_a_second(store, ids["odd"])
        ids["dead"] = _live_run(store, "nlp", "dead", heartbeat_age=3600)  # "running", its heartbeat long gone
    finally:
        store.close()
    return ids


def test_runpoint_ui_exposes_runs_running_state_and_checkpoint_saves(root: Path) -> None:
    import runpoint as rp

    ids = _record_runs(root)
    with rp.init(project="vision", name="live", root=root, console=False, system_metrics=False) as run:
        for step in range(30):
            run.log({"train/loss": 2.0 / (step + 1), "val/acc": 0.5 + step / 100, "lr": 0.1}, step=step)
        run.log({f"aux/loss_{i:02d}": float(i) for i in range(25)}, step=30)  # more loss keys than the cap
        ckpt = rp.CheckpointManager(run, keep_last=2)
        ckpt.save(10, {"counter": 10})
        ckpt.save(20, {"counter": 20})
        assert run.flush(timeout=30)
        with running_server(root, "--prometheus-keys", "train/loss,val/*,aux/*") as server:
            assert httpx.get(server.url + "metrics").status_code == 401
            assert httpx.get(server.url + "metrics", headers={"authorization": "Bearer wrong"}).status_code == 401
            reply = httpx.get(server.url + "metrics", headers=server.auth)
        store = open_store(root)
        try:
            stored_runs = store.list_runs()
            stats = store.metric_stats(run.id)
        finally:
            store.close()
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain; version=")
    found = _samples(reply.text)

    expected = Counter((r.project, r.status.value) for r in stored_runs)
    expected[("nlp", "running")] -= 1  # the run with a stale heartbeat is reported as what it is: crashed
    expected[("nlp", "crashed")] += 1
    reported = {(labels["project"], labels["status"]): value for labels, value in found["runpoint_runs"]}
    assert reported == {(p, s.value): expected[(p, s.value)] for p in ("nlp", "vision") for s in RunStatus}
    assert reported[("vision", "running")] == 2 and reported[("vision", "completed")] == 2

    live_runs = {labels["run"] for labels, _ in found["runpoint_run_heartbeat_age_seconds"]}
    assert live_runs == {run.id, ids["odd"]}  # running and alive only; never the dead one
    assert _by_run(found["runpoint_run_last_value"], run.id, key="train/loss") == [2.0 / 30]
    assert _by_run(found["runpoint_run_last_value"], run.id, key="val/acc") == [0.5 + 29 / 100]
    keys = {labels["key"] for labels, _ in found["runpoint_run_last_value"] if labels["run"] == run.id}
    assert keys == {"train/loss", "val/acc", *(f"aux/loss_{i:02d}" for i in range(18))}  # 20: the first patterns' first
    assert _by_run(found["runpoint_run_step"], run.id) == [30]
    assert _by_run(found["runpoint_checkpoint_saves_total"], run.id) == [2]
    save_seconds = stats["checkpoint/save_seconds"]
    assert save_seconds.count == 2 and save_seconds.last_step == 20 and save_seconds.last > 0
    assert _by_run(found["runpoint_checkpoint_save_seconds"], run.id) == [save_seconds.last]

    # the odd name survives the label escaping; its points are half a second apart: 2 steps/s
    assert _by_run(found["runpoint_run_steps_per_second"], ids["odd"], name=ODD_NAME) == [2.0]
    assert _by_run(found["runpoint_run_last_value"], ids["odd"], name=ODD_NAME, key="train/loss") == [0.25]
    assert '\\"' in reply.text and "\\n" in reply.text and "\\\\" in reply.text
    (heartbeat_age,) = _by_run(found["runpoint_run_heartbeat_age_seconds"], run.id)
    assert 0 <= heartbeat_age < 60


def _team_client(db: str) -> Any:
    from fastapi.testclient import TestClient

    from runpoint.server.accounts import Accounts
    from runpoint.server.authn import install_accounts
    from runpoint.server.team import create_server_app

    accounts = Accounts(db)
    app = create_server_app(db, accounts=lambda app: install_accounts(app, accounts, cache_s=0))
    return TestClient(app), accounts


def test_team_server_over_postgresql_shows_a_limited_token_its_project_only(postgres_url: str) -> None:
    store = open_store(postgres_url)
    try:
        mine, theirs = _live_run(store, "A", "mine"), _live_run(store, "B", "theirs")
        _two_steps_a_second(store, mine, key="val/loss")
        _two_steps_a_second(store, theirs)
        assert isinstance(store, AlertStore)
        now = time.time()
        alerts = [AlertRecord(mine, now, level, "user", "t") for level in ("warning", "warning", "error")]
        store.write(mine, WriteBatch(alerts=alerts))
    finally:
        store.close()
    client, accounts = _team_client(postgres_url)
    with accounts, client:
        accounts.add_user("ada")
        limited = accounts.create_token("ada", "read", project="A").text
        everything = accounts.create_token("ada", "read").text
        assert client.get("/metrics").status_code == 401
        only_a = _samples(client.get("/metrics", headers={"authorization": f"Bearer {limited}"}).text)
        reply = client.get("/metrics", headers={"authorization": f"Bearer {everything}"})
    every = _samples(reply.text)
    assert {labels["project"] for labels, _ in only_a["runpoint_runs"]} == {"A"}
    assert {labels["run"] for labels, _ in only_a["runpoint_run_heartbeat_age_seconds"]} == {mine}
    assert _by_run(only_a["runpoint_run_steps_per_second"], mine) == [2.0]
    assert _by_run(only_a["runpoint_run_last_value"], mine, key="val/loss") == [0.25]
    running = {labels["project"]: value for labels, value in every["runpoint_runs"] if labels["status"] == "running"}
    assert running == {"A": 1, "B": 1}
    assert {labels["run"] for labels, _ in every["runpoint_run_step"]} == {mine, theirs}
    assert {labels["level"]: value for labels, value in every["runpoint_alerts"]} == {"warning": 2, "error": 1}
    assert {labels["run"] for labels, _ in only_a["runpoint_alerts"]} == {mine}


def test_the_default_keys_are_losses_and_accuracies_and_patterns_come_from_the_option() -> None:
    from runpoint.server.prometheus_snapshot import ExportSettings

    keys = ["lr", "train/loss", "val/acc", "val/accuracy", "epoch", "grad/norm", "train/loss_scale"]
    assert ExportSettings().chosen(keys) == ["train/loss", "train/loss_scale", "val/acc", "val/accuracy"]
    assert ExportSettings.parse(" lr , val/*,").chosen(keys) == ["lr", "val/acc", "val/accuracy"]
    assert ExportSettings.parse("").chosen(keys) == []


@settings(max_examples=100, deadline=None)
@given(name=st.text(min_size=1), key=st.text(min_size=1), value=st.floats(allow_nan=False))
def test_any_run_name_and_metric_key_survive_the_exposition_and_parse_back(name: str, key: str, value: float) -> None:
    from runpoint.server.prometheus import render
    from runpoint.server.prometheus_snapshot import RunState, Snapshot

    run = RunRecord(id="r1", project="p", name=name, status=RunStatus.RUNNING, created_at=0.0, heartbeat_at=0.0,
                    dir="p/r1")
    state = RunState(run=run, heartbeat_age_s=1.0, step=3, last_values={key: value})
    text = render(Snapshot(status_counts={"p": {"running": 1}}, running=[state], alerts_known=False)).decode()
    found = _samples(text)
    assert found["runpoint_run_last_value"] == [({"run": "r1", "project": "p", "name": name, "key": key}, value)]
    assert found["runpoint_run_step"] == [({"run": "r1", "project": "p", "name": name}, 3.0)]


@pytest.mark.parametrize("backend", ["sqlite", "generic", "postgres"])
def test_status_counts_group_the_runs_by_project_and_status(backend: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest) -> None:
    from runpoint.store.bulk import GenericBulkReader, bulk_reader

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path}/runpoint.db"
    store = open_store(url, create=True)
    try:
        statuses = [RunStatus.COMPLETED, RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.RUNNING, RunStatus.KILLED]
        for index, status in enumerate(statuses):
            project = "A" if index % 2 else "B"
            store.create_run(RunRecord(id=f"r{index}", project=project, name="n", status=status, created_at=0.0,
                                       heartbeat_at=0.0, dir=f"{project}/r{index}"))
        reader = GenericBulkReader(store) if backend == "generic" else bulk_reader(store)
        assert reader.status_counts() == {"B": {"completed": 1, "failed": 1, "killed": 1},
                                          "A": {"completed": 1, "running": 1}}
        assert reader.status_counts("A") == {"A": {"completed": 1, "running": 1}}
        assert reader.status_counts("nobody") == {}
    finally:
        store.close()
