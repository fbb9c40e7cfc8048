"""The team server end to end: a training process with an https root, the real `runpoint server` on PostgreSQL.

What reaches the server is compared point for point with the client's spool; faults
(the server SIGKILLed and restarted mid-run, the client SIGKILLed mid-run) lose and
duplicate nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from runpoint.errors import AccessDeniedError
from runpoint.remote import HttpStore, RemoteFiles
from runpoint.server.accounts import Accounts
from runpoint.store import RunStatus, open_store

from .http_server_fixture import start_server_process, stop_server_process

TRAIN = textwrap.dedent("""
    import sys, time
    import numpy as np
    import runpoint as rp
    steps, pause = int(sys.argv[1]), float(sys.argv[2])
    with rp.init(project="team", config={"lr": 0.1, "db_password": "hunter2"}, system_metrics=False) as run:
        ckpt = rp.CheckpointManager(run, keep_last=2)
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / steps}, step=step)
            if step % 500 == 0:
                run.log({"sample": rp.Image(np.full((4, 4, 3), step % 255, dtype=np.uint8))}, step=step)
                ckpt.save(step, {"weights": np.arange(1000, dtype=np.float64) * step})
                print("checkpoint at", step, flush=True)
                time.sleep(pause)
        run.summary["final"] = 0.5
        print("RUN", run.id, flush=True)
""")


@pytest.fixture
def team(postgres_url, tmp_path, monkeypatch):
    """A running `runpoint server` over a fresh PostgreSQL database and a files directory, with two tokens."""
    with Accounts(postgres_url) as accounts:
        accounts.add_user("alice")
        writer = accounts.create_token("alice", "write", project="team").text
        stranger = accounts.create_token("alice", "write", project="other").text
    files = tmp_path / "server-files"
    process, url = start_server_process(postgres_url, tmp_path, "--artifacts", str(files))
    env = {**os.environ, "RUNPOINT_ROOT": url, "RUNPOINT_TOKEN": writer, "RUNPOINT_SPOOL": str(tmp_path / "spool"),
           "RUNPOINT_SYNC_INTERVAL": "0.2", "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("RUNPOINT_UI_TOKEN", None)
    state = {"process": process, "url": url, "env": env, "files": files, "stranger": stranger, "db": postgres_url}
    yield state
    stop_server_process(state["process"])


def _train(team, tmp_path, steps: int, pause: float) -> subprocess.Popen:
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    return subprocess.Popen([sys.executable, str(script), str(steps), str(pause)], env=team["env"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _spool(tmp_path: Path):
    [root] = [p for p in (tmp_path / "spool").iterdir() if (p / "runpoint.db").exists()]
    return root, open_store(root)


def _assert_same_points(local, remote, run_id: str) -> None:
    assert local.metric_keys(run_id) == remote.metric_keys(run_id)
    for key in local.metric_keys(run_id):
        assert local.read_metric(run_id, key) == remote.read_metric(run_id, key), key


def test_a_run_recorded_against_the_server_arrives_whole(team, tmp_path) -> None:
    process = _train(team, tmp_path, 2000, 0.0)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    run_id = out.split("RUN ")[1].split()[0]
    remote = HttpStore(team["url"], token=team["env"]["RUNPOINT_TOKEN"])
    record = remote.get_run(run_id)
    assert record.status is RunStatus.COMPLETED and record.project == "team"
    _, local = _spool(tmp_path)
    _assert_same_points(local, remote, run_id)
    assert remote.get_params(run_id)["db_password"] != "hunter2" and remote.get_summary(run_id) == {"final": 0.5}
    assert [m.step for m in remote.read_media(run_id, "sample")] == [0, 500, 1000, 1500]

    files = RemoteFiles(team["url"], token=team["env"]["RUNPOINT_TOKEN"])
    listed = dict(files.list(run_id))
    assert "checkpoint at 1500" in (team["files"] / "team" / run_id / "logs" / "console.log").read_text()
    kept = sorted(p for p in listed if p.endswith("/manifest.json"))
    assert kept == ["checkpoints/step-001000/manifest.json", "checkpoints/step-001500/manifest.json"]  # keep_last=2
    assert [c.step for c in remote.list_checkpoints(run_id)] == [1000, 1500]  # the registry mirrors retention
    manifest = json.loads((team["files"] / "team" / run_id / "checkpoints" / "step-001500" / "manifest.json").read_text())
    assert manifest["step"] == 1500

    # the command line reads the server; a token of another project sees nothing of this one
    shown = subprocess.run([sys.executable, "-m", "runpoint", "ls", "--root", team["url"], "--json"],
                           env=team["env"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and run_id in shown.stdout, shown.stderr
    listed_ckpts = subprocess.run([sys.executable, "-m", "runpoint", "ckpt", "ls", run_id, "--root", team["url"], "--json"],
                                  env=team["env"], capture_output=True, text=True, timeout=60)
    rows = json.loads(listed_ckpts.stdout)["checkpoints"]
    assert [(r["step"], r["on_disk"], r["latest"]) for r in rows] == [(1000, True, False), (1500, True, True)]
    with pytest.raises(AccessDeniedError, match="project"):
        HttpStore(team["url"], token=team["stranger"]).get_run(run_id)
    assert team["env"]["RUNPOINT_TOKEN"] not in shown.stdout + shown.stderr


@pytest.mark.slow
def test_the_server_killed_and_restarted_mid_run_loses_and_duplicates_nothing(team, tmp_path) -> None:
    process = _train(team, tmp_path, 4000, 0.6)  # about 5 s of training with checkpoints on the way
    time.sleep(1.5)
    port = int(team["url"].rsplit(":", 1)[1])
    os.killpg(team["process"].pid, signal.SIGKILL)  # the server dies mid-ingest
    team["process"].wait()
    time.sleep(2.0)
    team["process"], _ = start_server_process(team["db"], tmp_path, "--artifacts", str(team["files"]), port=port)
    out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert "cannot reach the server" in err and "reachable again" in err  # the user was told, once each
    run_id = out.split("RUN ")[1].split()[0]
    remote = HttpStore(team["url"], token=team["env"]["RUNPOINT_TOKEN"])
    _, local = _spool(tmp_path)
    _assert_same_points(local, remote, run_id)
    assert remote.get_run(run_id).status is RunStatus.COMPLETED


@pytest.mark.slow
def test_a_client_killed_mid_run_is_completed_by_runpoint_sync(team, tmp_path) -> None:
    process = _train(team, tmp_path, 100_000, 0.3)
    time.sleep(4)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    root, local = _spool(tmp_path)
    [run] = local.list_runs()
    status = subprocess.run([sys.executable, "-m", "runpoint", "sync", "--status", "--json"], env=team["env"],
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0, status.stderr
    for attempt in range(2):  # twice: the second sends nothing
        result = subprocess.run([sys.executable, "-m", "runpoint", "sync", "--all", "--json"], env=team["env"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
    remote = HttpStore(team["url"], token=team["env"]["RUNPOINT_TOKEN"])
    _assert_same_points(local, remote, run.id)
    assert all(r.deleted_at is not None or r.step <= local.metric_stats(run.id)["loss"].last_step
               for r in remote.list_checkpoints(run.id, include_deleted=True))


@pytest.mark.slow
def test_the_team_servers_dashboard_in_a_browser(team, tmp_path) -> None:
    """A person opens the server with their token once: the run recorded through it is listed, charted, its console shown."""
    from .dashboard_fixtures import browser_or_skip, screenshot

    process = _train(team, tmp_path, 600, 0.0)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    run_id = out.split("RUN ")[1].split()[0]
    manager, browser = browser_or_skip()
    try:
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(20_000)
        assert page.goto(team["url"] + "/api/runs").status == 401  # no token, nothing
        token = team["env"]["RUNPOINT_TOKEN"]
        page.goto(f"{team['url']}/?token={token}")
        assert token not in page.url  # the token became a cookie, and left the address bar
        page.goto(team["url"] + "#/runs")
        page.locator("#runs-table tbody tr").first.wait_for()
        assert run_id[:8] in page.locator("#runs-table").inner_text()  # the table shows ids shortened
        assert page.locator("[data-nav='launch']").count() == 0  # nothing to launch on a team server
        page.goto(f"{team['url']}#/run/{run_id}")
        page.locator("canvas").first.wait_for()
        page.get_by_text("console", exact=False).first.click()
        page.get_by_text("checkpoint at 500").first.wait_for()
        screenshot(page, "team-server-run")
        page.get_by_text("Media", exact=False).first.click()
        image = page.locator("img").first
        image.wait_for()
        page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        page.get_by_text("Checkpoints", exact=False).first.click()
        page.get_by_text("500").first.wait_for()
        screenshot(page, "team-server-checkpoints")
        assert errors == [], errors
    finally:
        browser.close()
        manager.stop()


@pytest.mark.slow
def test_postgresql_restarted_mid_run_loses_and_duplicates_nothing(tmp_path) -> None:
    """The database behind the server goes down for two seconds during ingest, and comes back."""
    from runpoint._devtools.pg_cluster import TempCluster, binaries

    bin_dir = binaries()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed")
    cluster = TempCluster(bin_dir)
    try:
        cluster.start()
        db = cluster.create_database("team")
        with Accounts(db) as accounts:
            accounts.add_user("alice")
            token = accounts.create_token("alice", "write").text
        server, url = start_server_process(db, tmp_path, "--artifacts", str(tmp_path / "files"))
        try:
            env = {**os.environ, "RUNPOINT_ROOT": url, "RUNPOINT_TOKEN": token, "RUNPOINT_SPOOL": str(tmp_path / "spool"),
                   "RUNPOINT_SYNC_INTERVAL": "0.2", "PYTHONPATH": os.pathsep.join(sys.path)}
            process = _train({"env": env}, tmp_path, 4000, 0.6)
            time.sleep(1.5)
            cluster.restart(down_s=2.0)
            out, err = process.communicate(timeout=180)
            assert process.returncode == 0, err
            run_id = out.split("RUN ")[1].split()[0]
            remote = HttpStore(url, token=token)
            _, local = _spool(tmp_path)
            _assert_same_points(local, remote, run_id)
            assert remote.get_run(run_id).status is RunStatus.COMPLETED
            assert token not in err
        finally:
            stop_server_process(server)
    finally:
        cluster.stop()


@pytest.mark.slow
def test_the_server_speaks_tls_with_uvicorns_certificate_options(tmp_path, monkeypatch) -> None:
    """`runpoint server --ssl-certfile --ssl-keyfile`: clients reach it over https (trusting that certificate) only."""
    import shutil

    import httpx

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem"), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    db = f"sqlite:///{tmp_path}/team.db"
    with Accounts(db) as accounts:
        accounts.add_user("alice")
        token = accounts.create_token("alice", "write").text
    from .http_server_fixture import _free_port

    port = _free_port()
    log = open(tmp_path / "tls.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "runpoint", "server", "--db", db, "--port", str(port),
                               "--ssl-certfile", str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem")],
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        url = f"https://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/api/store/count", verify=str(tmp_path / "cert.pem"), timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))  # the client trusts this server's certificate
        store = HttpStore(url, token=token)
        assert store.count_runs() == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/api/store/count", timeout=2)  # no plain HTTP on that port
        with pytest.raises(Exception):  # an untrusted certificate is refused, not skipped
            httpx.get(url + "/api/store/count", verify=True, trust_env=False, timeout=2)
    finally:
        stop_server_process(server)
        log.close()
