"""The team server's dashboard API under tokens limited to a project or a scope.

A real team server app (``create_server_app`` with accounts) over a SQLite root holding
two real runs, one in project ``alpha`` and one in ``beta-secret``, each with config,
metrics, summary, a console log, a checkpoint and an image. A token limited to ``alpha``
must not see anything of the other run through any route of the app; walking every route
is what keeps a route added later honest.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import runpoint as rp
from runpoint.server.accounts import Accounts
from runpoint.server.audit_log import AuditBuffer
from runpoint.server.authn import install_accounts
from runpoint.server.team import create_server_app


@dataclass
class RecordedRun:
    id: str
    project: str
    name: str
    param: str  # a config key only this run has
    metric: str
    console: str
    media_key: str
    media_path: str  # below the run's directory
    step: int
    group: str


@dataclass
class Server:
    app: FastAPI
    root: Path
    client: TestClient
    audit: AuditBuffer
    accounts: Accounts
    a: RecordedRun
    b: RecordedRun
    limited: dict[str, str]  # write, limited to alpha
    reader: dict[str, str]  # read, every project
    admin: dict[str, str]


def _record(root: Path, project: str, name: str, tag: str) -> RecordedRun:
    import torch

    config = {"lr": 0.1, f"{tag}_only_param": 1}
    with rp.init(project=project, name=name, root=root, config=config, group=f"{tag}-group",
                 console=False, system_metrics=False) as run:
        run.log({f"{tag}/secret_loss": 0.5}, step=3)
        run.log({f"{tag}_samples": rp.Image(np.full((4, 4, 3), 9, dtype=np.uint8))}, step=3)
        rp.CheckpointManager(run).save(3, {"w": torch.arange(4.0)})
        run.summary[f"{tag}_summary"] = 1.0
    run_dir = root / project / run.id
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "console.log").write_text(f"{tag} console secret\n")
    [image] = (run_dir / "media").rglob("*.png")
    return RecordedRun(run.id, project, name, f"{tag}_only_param", f"{tag}/secret_loss", f"{tag} console secret",
                       f"{tag}_samples", image.relative_to(run_dir).as_posix(), 3, f"{tag}-group")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("root")
    a = _record(root, "alpha", "baseline", "alpha")
    b = _record(root, "beta-secret", "baseline", "beta")  # the same name: a name must not reach across projects
    db = f"sqlite:///{root / 'runpoint.db'}"
    accounts = Accounts(db)
    for user in ("ada", "bob", "root"):
        accounts.add_user(user)
    tokens = {
        "limited": accounts.create_token("ada", "write", project="alpha").text,
        "reader": accounts.create_token("bob", "read").text,
        "admin": accounts.create_token("root", "admin").text,
    }
    buffers: list[AuditBuffer] = []
    app = create_server_app(db, str(root), accounts=lambda app: buffers.append(
        install_accounts(app, accounts, cache_s=0, audit_interval_s=3600)))
    with TestClient(app) as client:
        bearer = {name: {"authorization": f"Bearer {token}"} for name, token in tokens.items()}
        yield Server(app, root, client, buffers[0], accounts, a, b, bearer["limited"], bearer["reader"], bearer["admin"])
    accounts.close()


def _refused(response: Any, status: int = 403, says: str = "limited to project 'alpha'") -> bool:
    return response.status_code == status and says in response.json()["detail"]


def test_a_token_limited_to_a_project_sees_and_reads_only_that_project(server: Server) -> None:
    client, a, b, limited = server.client, server.a, server.b, server.limited
    info = client.get("/api/info", headers=limited).json()
    assert info["projects"] == {"alpha": 1} and info["runs"] == 1
    assert [row["id"] for row in client.get("/api/runs", headers=limited).json()["runs"]] == [a.id]
    assert [row["id"] for row in client.get("/api/runs?project=alpha", headers=limited).json()["runs"]] == [a.id]
    assert _refused(client.get("/api/runs?project=beta-secret", headers=limited), says="limited to project 'alpha'")
    assert b.param not in client.get("/api/columns", headers=limited).json()["params"]

    # its own run, by id, prefix, name (which another project's run shares) and "latest" (which is the other run)
    for ref in (a.id, a.id[:6], "baseline", "latest"):
        assert client.get(f"/api/runs/{ref}", headers=limited).json()["run"]["id"] == a.id, ref
    assert client.get(f"/api/runs/{a.id}/console", headers=limited).json()["text"] == a.console + "\n"
    assert client.get(f"/api/runs/{a.id}/files/{a.media_path}", headers=limited).status_code == 200
    assert client.post(f"/api/runs/{a.id}/checkpoints/3/verify", headers=limited).json()["ok"] is True
    assert len(client.get("/api/compare", params={"runs": [a.id, "baseline"]}, headers=limited).json()["runs"]) == 2

    # the other project's run: its full id is refused as the store API refuses it; a prefix is not found
    b_routes = ["", "/state", f"/series?key={b.metric}", "/console", "/checkpoints", "/media", f"/files/{b.media_path}"]
    for route in b_routes:
        response = client.get(f"/api/runs/{b.id}{route}", headers=limited)
        assert _refused(response), (route, response.text)
    assert _refused(client.post(f"/api/runs/{b.id}/checkpoints/3/verify", headers=limited))
    assert _refused(client.post(f"/api/runs/{b.id}/stop", headers=limited))
    b_prefix = b.id[:len(os.path.commonprefix([a.id, b.id])) + 1]  # ids begin with their time: often alike
    assert client.get(f"/api/runs/{b_prefix}", headers=limited).status_code == 404
    assert client.get("/api/runs/no-such-run", headers=limited).status_code == 404  # unknown stays 404
    assert _refused(client.get("/api/compare", params={"runs": [a.id, b.id]}, headers=limited))
    assert client.get("/api/compare", params={"runs": [a.id, b_prefix]}, headers=limited).status_code == 404

    # reading a run's files is audited as the files API's reads are
    server.audit.flush()
    read = [(e.action, e.run_id, e.target, e.detail) for e in server.accounts.query_audit(user="ada", run_id=a.id)]
    assert ("files.get", a.id, "logs/console.log", {"via": "dashboard"}) in read
    assert ("files.get", a.id, a.media_path, {"via": "dashboard"}) in read
    assert ("checkpoint.verify", a.id, "3", {"via": "dashboard"}) in read
    assert not server.accounts.query_audit(user="ada", run_id=b.id)  # nothing of the other run was read


def test_a_read_token_cannot_change_anything_and_an_unlimited_one_sees_everything(server: Server) -> None:
    client, a, b = server.client, server.a, server.b
    for path in (f"/api/runs/{a.id}/checkpoints/3/verify", f"/api/runs/{a.id}/stop", "/api/launches"):
        assert _refused(client.post(path, headers=server.reader, json={}), says="scope is read"), path
    assert client.get(f"/api/runs/{b.id}/console", headers=server.reader).json()["text"] == b.console + "\n"
    info = client.get("/api/info", headers=server.admin).json()
    assert info["projects"] == {"alpha": 1, "beta-secret": 1} and info["runs"] == 2
    assert {row["id"] for row in client.get("/api/runs", headers=server.admin).json()["runs"]} == {a.id, b.id}
    compared = client.get("/api/compare", params={"runs": [a.id, b.id]}, headers=server.admin)
    assert [run["id"] for run in compared.json()["runs"]] == [a.id, b.id]
    assert client.post(f"/api/runs/{b.id}/checkpoints/3/verify", headers=server.admin).json()["ok"] is True
    assert client.get("/api/runs/baseline", headers=server.admin).status_code == 400  # two runs have that name


def test_runpoint_ui_without_accounts_is_unchanged(server: Server) -> None:
    """The local dashboard over the same root: no token, every project, names resolved across projects."""
    from runpoint.server.app import create_app

    client, a, b = TestClient(create_app(server.root, loopback_only=False)), server.a, server.b
    assert client.get("/api/info").json()["projects"] == {"alpha": 1, "beta-secret": 1}
    assert client.get(f"/api/runs/{b.id}/console").json()["text"] == b.console + "\n"
    assert client.get("/api/runs/latest").json()["run"]["id"] == b.id
    assert client.get("/api/runs/baseline").status_code == 400  # two runs have that name
    assert client.post(f"/api/runs/{a.id}/checkpoints/3/verify").json()["ok"] is True


# -- every route of the app -----------------------------------------------------------------

# The store API validates a request's body before its handler authorizes the run: a 422 there
# reveals nothing (it echoes what was sent); every dashboard route answers 403/404 before that.
CHECKS_AFTER_BODY = "/api/store/"
PATH_PARAM = re.compile(r"{(\w+)(?::\w+)?}")
RUN_NAMED = {"run_id", "ref"}  # the path parameters that name a run (runpoint.server.access.RUN_PARAMS)


def _routes(app: FastAPI) -> Iterator[tuple[str, str, Any]]:
    """(method, path, endpoint) of every route, included routers' too, whatever the FastAPI version."""
    try:  # FastAPI that includes routers lazily
        from fastapi.routing import iter_route_contexts
        routes: Any = list(iter_route_contexts(app.routes))
    except ImportError:
        routes = app.routes
    for route in routes:
        for method in sorted(getattr(route, "methods", None) or ["GET"]):  # a mount: GET its root
            if method != "HEAD":
                yield method, route.path, getattr(route, "endpoint", None)


def _fill(name: str, path: str, run: RecordedRun) -> Any:
    """A value for parameter ``name`` of route ``path`` that names ``run``'s data."""
    if name == "runs":
        return [run.id]
    if name in {"step", "sequence", "rank"}:
        return str(run.step)
    if name == "key":
        return run.media_key if "media" in path else run.metric
    if name == "path":
        return run.media_path
    if name == "project":
        return run.project
    if name in {"text", "name"}:
        return run.name
    if name == "group":
        return run.group
    return run.id  # run_id, ref, launch_id, and whatever names a thing a route added later takes


def _request(server: Server, method: str, path: str, endpoint: Any, run: RecordedRun, headers: dict[str, str]) -> Any:
    from fastapi.dependencies.utils import get_dependant

    names = PATH_PARAM.findall(path)
    url = PATH_PARAM.sub(lambda m: str(_fill(m.group(1), path, run)), path)
    query: dict[str, Any] = {}
    if endpoint is not None:
        for field in get_dependant(path=path, call=endpoint).query_params:
            if field.field_info.is_required() and field.alias not in names:
                query[field.alias] = _fill(field.alias, path, run)
    if "runs" in query:
        query["runs"] = [server.a.id, run.id]  # compare: one visible run and the other
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    return url, names, server.client.request(method, url, params=query, json=body, headers=headers)


def test_no_route_gives_a_token_limited_to_a_project_another_projects_run(server: Server) -> None:
    """Every route, asked about the other project's run by the limited token, shows none of it.

    Nothing is exempt: the routes that carry no run data (the OpenAPI description, /api/docs,
    the page, /static) are walked too and pass because they show none. A route whose path
    names a run must answer 403 or 404 before anything else (a dashboard route added later
    without ``dependencies=[RUN_ACCESS]`` answers 200, or 422 for a body, and fails here).
    """
    b = server.b
    secrets = {b.id, b.project, b.param, b.metric, b.console, b.media_key, b.group, "beta_summary"}
    walked = []
    for method, path, endpoint in _routes(server.app):
        url, names, response = _request(server, method, path, endpoint, b, server.limited)
        walked.append(f"{method} {path}")
        sent = unquote(str(response.request.url))
        shown = [secret for secret in secrets if secret in response.text and secret not in sent]
        assert not shown, f"{method} {path} shows {shown}: {response.status_code} {response.text[:300]}"
        if RUN_NAMED.intersection(names):
            allowed = {403, 404} | ({422} if path.startswith(CHECKS_AFTER_BODY) else set())
            assert response.status_code in allowed, f"{method} {url}: {response.status_code} {response.text[:300]}"
        else:
            assert response.status_code != 500, f"{method} {url}: {response.text[:300]}"
    # the walk reached the routes this protects: the dashboard's, the store API's, the files API's
    for route in ("GET /api/runs/{ref}/console", "POST /api/runs/{ref}/checkpoints/{step}/verify",
                  "GET /api/compare", "GET /api/store/runs/{run_id}/params", "GET /api/store/runs/{run_id}/files"):
        assert route in walked


def test_the_walk_names_real_data_an_unlimited_token_gets(server: Server) -> None:
    """The values the walk fills in are the other run's real ones: the admin gets 200 from every dashboard GET."""
    for method, path, endpoint in _routes(server.app):
        if method == "GET" and PATH_PARAM.search(path) and path.startswith("/api/runs/"):
            url, _, response = _request(server, method, path, endpoint, server.b, server.admin)
            assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"


def test_the_team_server_never_signals_a_pid_a_client_recorded(server: Server) -> None:
    """A write token could record a run with this host and any pid; stop must not become a way to kill it."""
    import socket
    import subprocess
    import sys
    import time

    from runpoint.store.base import RunRecord, RunStatus
    from runpoint.store.sqlite import SQLiteStore

    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        now = time.time()
        with SQLiteStore(server.root / "runpoint.db") as store:
            store.create_run(RunRecord(id="planted0pid0", project="alpha", name="planted", status=RunStatus.RUNNING,
                                       created_at=now, heartbeat_at=now + 5, dir="alpha/planted0pid0",
                                       host=socket.gethostname(), pid=victim.pid))
        for force in (False, True):
            refused = server.client.post("/api/runs/planted0pid0/stop", headers=server.admin, json={"force": force})
            assert refused.status_code == 403 and "does not signal processes" in refused.json()["detail"]
        time.sleep(0.2)
        assert victim.poll() is None  # still alive
    finally:
        victim.kill()
        victim.wait()
        with SQLiteStore(server.root / "runpoint.db") as store:  # the module's other tests count the runs
            store.delete_run("planted0pid0")
