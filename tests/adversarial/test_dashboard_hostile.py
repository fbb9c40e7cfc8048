"""Hostile requests to a real `runpoint ui` server: forged run records, odd Host headers and
redirects, launch configs that are too deep, too big or point outside the root, and a
checkpoint whose file never ends."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from runpoint.store.base import RunRecord, RunStatus
from runpoint.store.sqlite import SQLiteStore

from ..dashboard_fixtures import Server, running_server

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("hostile") / "runpoint"
    SQLiteStore(root / "runpoint.db").close()
    previous = os.environ.get("RUNPOINT_UI_VERIFY_TIMEOUT")
    os.environ["RUNPOINT_UI_VERIFY_TIMEOUT"] = "3"  # the server reads it when a Verify comes
    try:
        with running_server(root) as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("RUNPOINT_UI_VERIFY_TIMEOUT", None)
        else:
            os.environ["RUNPOINT_UI_VERIFY_TIMEOUT"] = previous


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=60) as client:
        yield client


def _raw_get(server: Server, target: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    """One GET with the request target and Host exactly as given (no client normalises them)."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for key, value in headers.items():
        connection.putheader(key, value)
    connection.endheaders()
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


# -- 13.7: a heartbeat in the future vouches for no pid ------------------------------------


def test_stop_never_signals_a_pid_vouched_for_by_a_heartbeat_in_the_future(server: Server, client: httpx.Client) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    now = time.time()
    store = SQLiteStore(server.root / "runpoint.db")
    try:
        for run_id, ahead in (("future-far", 3600.0), ("future-near", 30.0)):  # beyond and within the timeout
            store.create_run(RunRecord(
                id=run_id, project="p", name=run_id, status=RunStatus.RUNNING, created_at=now - 100,
                heartbeat_at=now + ahead, dir=f"p/{run_id}", host=socket.gethostname(), pid=sleeper.pid,
            ))
        for run_id in ("future-far", "future-near"):
            response = client.post(f"/api/runs/{run_id}/stop")
            assert 400 <= response.status_code < 500, response.text
            time.sleep(0.2)
            assert sleeper.poll() is None, f"stopping {run_id} signalled the sleep"
            record = store.get_run(run_id)
            # the reader does not believe the record: the run has crashed, and it ended no later than now
            assert record.status is RunStatus.CRASHED and record.ended_at is not None
            assert record.ended_at <= time.time()
    finally:
        store.close()
        sleeper.kill()
        sleeper.wait()


def test_the_launcher_refuses_a_running_record_whose_heartbeat_is_in_the_future(tmp_path: Path) -> None:
    from runpoint.errors import InvalidArgumentError
    from runpoint.server.launch import Launcher

    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        run = RunRecord(id="r", project="p", name="r", status=RunStatus.RUNNING, created_at=time.time() - 100,
                        heartbeat_at=time.time() + 30, dir="p/r", host=socket.gethostname(), pid=sleeper.pid)
        with pytest.raises(InvalidArgumentError, match="heartbeat in the future"):
            Launcher(tmp_path, []).stop_run(run)
        time.sleep(0.2)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


# -- 13.8: Host header and the token redirect ----------------------------------------------


@pytest.mark.parametrize("host", ["localhost:1@evil.com", "127.0.0.1:80@evil.com", "localhost/evil.com",
                                  "localhost:80:80", "evil.com#localhost", "localhost\\@evil.com", ""])
def test_a_host_header_that_is_not_name_and_port_is_refused(server: Server, host: str) -> None:
    response = _raw_get(server, "/api/info", {"Host": host, "Authorization": f"Bearer {server.token}"})
    assert response.status == 403


def test_loopback_host_headers_still_pass(server: Server) -> None:
    port = urlsplit(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", f"[::1]:{port}", "LOCALHOST"):
        assert _raw_get(server, "/api/info", {"Host": host, "Authorization": f"Bearer {server.token}"}).status == 200


@pytest.mark.parametrize("target", ["/%5Cevil.com", "/%5C%5Cevil.com", "/%2F%2Fevil.com", "//evil.com",
                                    "/%5C/evil.com", "/%09/evil.com", "/\\evil.com"])
def test_the_token_redirect_never_leaves_this_server(server: Server, target: str) -> None:
    response = _raw_get(server, f"{target}?token={server.token}&x=1", {"Host": "127.0.0.1"})
    assert response.status == 303
    location = response.getheader("location")
    # browsers read a backslash as '/', and skip tabs and newlines, before deciding whether a URL names a host
    as_browser_reads = "".join(c for c in location if c not in "\t\r\n").replace("\\", "/")
    assert as_browser_reads.startswith("/") and not as_browser_reads.startswith("//"), location
    assert urlsplit(as_browser_reads).netloc == "" and "token" not in location and location.endswith("?x=1")


# -- 13.8: launch configs ------------------------------------------------------------------


def _launches(server: Server) -> list[Path]:
    folder = server.root / ".launches"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_a_launch_config_nested_900_deep_is_refused_with_a_422(server: Server, client: httpx.Client) -> None:
    for depth in (900, 40, 5000):
        body = '{"entry_point": "demo", "config": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
        response = client.post("/api/launches", content=body, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500, (depth, response.status_code, response.text[:300])
    response = client.post("/api/launches", json={"entry_point": "demo", "config": _nested(900)})
    assert response.status_code == 422 and "deeper than 32" in response.json()["detail"]
    assert _launches(server) == []


def _nested(depth: int) -> dict:
    value: dict = {"a": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(("config", "field"), [
    ({"training": {"epochs": 10**23}}, "training.epochs"),
    ({"training": {"epochs": 1001}}, "training.epochs"),
    ({"training": {"epochs": None, "max_steps": 10**23}}, "training.max_steps"),
    ({"model": {"hidden_sizes": [10**9]}}, "model.hidden_sizes"),
    ({"model": {"hidden_sizes": [8] * 1000}}, "model.hidden_sizes"),
])
def test_the_launch_api_applies_the_demo_limits(server: Server, client: httpx.Client, config: dict, field: str) -> None:
    response = client.post("/api/launches", json={"entry_point": "demo", "config": config})
    assert response.status_code == 422, response.text
    assert any(issue.startswith(f"{field}:") for issue in response.json()["issues"]), response.json()
    assert _launches(server) == []


def test_the_cli_demo_refuses_the_same_epochs(tmp_path: Path) -> None:
    from ..conftest import cli

    result = cli(tmp_path / "runpoint", "demo", "training.epochs=100000000000000000000000")
    assert result.returncode != 0 and "training.epochs" in result.stderr and "at most 1000" in result.stderr
    assert not (tmp_path / "runpoint").exists()


@pytest.mark.parametrize("experiment", [
    {"sinks": [{"tensorboard": {"logdir": "/tmp/runpoint-elsewhere"}}]},
    {"sinks": {"tensorboard": {"logdir": "../../outside"}}},
    {"sinks": [{"wandb": {"dir": "/"}}]},
    {"sinks": [{"mlflow": {"tracking_uri": "sqlite:////tmp/runpoint-elsewhere.db"}}]},
    {"sinks": [{"mlflow": {"tracking_uri": "file:///tmp/mlruns"}}]},
    {"root": "/tmp/runpoint-elsewhere"},
])
def test_a_launch_config_may_not_write_outside_the_root(server: Server, client: httpx.Client, experiment: dict) -> None:
    response = client.post("/api/launches", json={"entry_point": "demo", "config": {"experiment": experiment}})
    assert response.status_code == 422, response.text
    assert "outside the dashboard's root" in response.text or "experiment.root" in response.text
    assert _launches(server) == []


def test_paths_inside_the_root_and_remote_trackers_are_allowed(tmp_path: Path) -> None:
    from runpoint.server.launch_limits import path_problems

    root = tmp_path / "runpoint"
    inside = {"experiment": {"root": str(root), "sinks": [
        {"tensorboard": {"logdir": str(root / "tb")}}, {"wandb": {"dir": "runpoint/wandb"}},
        {"mlflow": {"tracking_uri": "http://mlflow.example:5000"}},
    ]}}
    assert path_problems(inside, root, cwd=tmp_path) == []
    assert path_problems({"experiment": {"sinks": ["tensorboard"]}}, root, cwd=tmp_path) == []
    link = root / "tb-link"
    root.mkdir()
    link.symlink_to(tmp_path.parent)  # a link inside the root that leads out counts as outside
    assert path_problems({"experiment": {"sinks": [{"tensorboard": {"logdir": str(link)}}]}}, root, cwd=tmp_path)


# -- 13.5: Verify has a time limit ---------------------------------------------------------


@pytest.mark.slow  # imports torch and saves a real checkpoint
def test_verify_of_a_checkpoint_that_never_ends_answers_within_its_time_limit(server: Server, client: httpx.Client) -> None:
    torch = pytest.importorskip("torch")
    import psutil

    import runpoint as rp

    with rp.init(project="p", root=server.root, console=False, system_metrics=False) as run:
        info = rp.CheckpointManager(run).save(1, {"w": torch.zeros(8)})
    assert info is not None
    folder = info.path
    files = [path for path in Path(folder).iterdir() if path.name != "manifest.json" and path.is_file()]
    assert files
    files[0].unlink()
    os.mkfifo(files[0])  # opening it for reading waits for a writer that never comes
    began = time.monotonic()
    response = client.post(f"/api/runs/{run.id}/checkpoints/1/verify")
    elapsed = time.monotonic() - began
    # 504 while reading a FIFO blocks; a reader that refuses non-regular files answers a problem instead
    if response.status_code == 200:
        assert response.json()["ok"] is False
    else:
        assert response.status_code == 504 and "took longer than 3 s" in response.json()["detail"]
    assert elapsed < 30
    time.sleep(0.5)
    verifying = [child for child in psutil.Process(server.process.pid).children(recursive=True)
                 if "verify_checkpoint" in " ".join(child.cmdline())]
    assert verifying == []  # the verification was stopped, not left waiting


# -- 13.8: malformed bodies to every operation that takes one --------------------------------

HOSTILE_BODIES = [
    b'{"entry_point": "demo", "config": ' + b'{"a": ' * 900 + b"1" + b"}" * 900 + b"}",
    b'{"entry_point": "demo", "config": {"a": ' + b"[" * 900 + b"]" * 900 + b"}}",
    b"[" * 20_000 + b"]" * 20_000,
    b'{"entry_point": "demo", "config": {"training": {"epochs": 1' + b"0" * 5000 + b"}}}",
    b'{"entry_point": "demo", "config": {"training": {"learning_rate": NaN}}}',
    b'{"force": Infinity}',
    b'{"entry_point": "\xff\xfe"}',
    b"",
    b"null",
    b'"text"',
]


def test_every_operation_answers_hostile_bodies_with_a_4xx(server: Server, client: httpx.Client) -> None:
    spec = client.get("/api/openapi.json").json()
    operations = [(method.upper(), path) for path, methods in spec["paths"].items()
                  for method, operation in methods.items() if "requestBody" in operation]
    assert ("POST", "/api/launches") in operations
    for method, path in operations:
        url = path.replace("{ref}", "nope").replace("{launch_id}", "nope").replace("{step}", "1")
        for body in HOSTILE_BODIES:
            response = client.request(method, url, content=body, headers={"content-type": "application/json"})
            assert 400 <= response.status_code < 500, (method, path, body[:60], response.status_code, response.text[:200])
    assert _launches(server) == []
