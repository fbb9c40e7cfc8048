"""The store API refuses bad input with a 4xx (never a 500), keeps limited tokens in their project, audits changes;
two server processes on one PostgreSQL database serve one store; a schemathesis fuzz of the write API finds no 5xx."""

from __future__ import annotations

import time
from array import array
from pathlib import Path
from typing import Any

import msgpack
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from runpoint.errors import AccessDeniedError, InvalidArgumentError, RunNotFoundError  # noqa: E402
from runpoint.remote.http import HttpSession  # noqa: E402
from runpoint.remote.store import HttpStore  # noqa: E402
from runpoint.server.auth import Principal  # noqa: E402
from runpoint.server.store_api import MAX_BODY_BYTES  # noqa: E402
from runpoint.server.team import create_server_app  # noqa: E402
from runpoint.store import (  # noqa: E402
    MetricSeries,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
    open_store,
)
from runpoint.store.wire import MSGPACK  # noqa: E402

from .http_server_fixture import start_server_process, stop_server_process  # noqa: E402


def _run(run_id: str, project: str = "p") -> dict[str, Any]:
    return {"id": run_id, "project": project, "name": run_id, "created_at": 1.0, "heartbeat_at": 1.0}


class _As:
    """Test middleware: every request's principal is ``self.who`` (None: the local admin)."""

    who: Principal | None = None

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and _As.who is not None:
            scope.setdefault("state", {})["principal"] = _As.who
        await self.app(scope, receive, send)


@pytest.fixture
def api(tmp_path: Path) -> Any:
    app = create_server_app(f"sqlite:///{tmp_path}/runpoint.db")
    audited: list[tuple[str, str | None, str | None, str]] = []
    app.state.audit_sink = lambda who, action, project, run_id, target, detail: audited.append(
        (action, project, run_id, who.user))
    app.add_middleware(_As)
    client = TestClient(app, raise_server_exceptions=False)
    client.audited = audited  # type: ignore[attr-defined]
    assert client.post("/api/store/runs", json={"run": _run("a")}).status_code == 201
    assert client.post("/api/store/runs", json={"run": _run("b", project="q")}).status_code == 201
    yield client
    _As.who = None
    client.close()
    app.state.dashboard.store.close()


def _batch(**fields: Any) -> bytes:
    return msgpack.packb(fields, use_bin_type=True)


def test_bad_input_is_a_4xx_with_a_reason_never_a_500(api) -> None:
    post = lambda path, **kw: api.post(f"/api/store{path}", **kw)  # noqa: E731
    mp = {"content-type": MSGPACK}
    cases = [
        (post("/runs/a/batches", content=b"\xc1\xff", headers=mp), 400, "not valid msgpack"),
        (post("/runs/a/batches", content=b"{nope", headers={"content-type": "application/json"}), 400, "not valid JSON"),
        (post("/runs/a/batches", content=b"x", headers={"content-type": "text/plain"}), 415, "msgpack"),
        (post("/runs/a/batches", content=_batch(metrics={"x": [b"\x00" * 7, b"", b""]}), headers=mp), 400, "steps"),
        (post("/runs/a/batches", json={"metrics": {"x": [[1], [1.0, 2.0], [0.0]]}}), 400, "differ in length"),
        (post("/runs/a/batches", json={"rank": "zero"}), 400, "rank"),
        (post("/runs/a/batches", json={"bogus": 1}), 400, "unknown field"),
        (post("/runs/a/batches", json={"media": [{"key": "i", "step": 0, "kind": "image", "time": 1.0,
                                                  "path": "../../x.png"}]}), 400, "path"),
        (post("/runs/a/batches", json={"media": [{"key": "i", "step": 0, "kind": "image", "time": 1.0,
                                                  "path": "elsewhere/x.png"}]}), 400, "leaves the run's media"),
        (post("/runs/nope/batches", json={"heartbeat_at": 1.0}), 404, "no run matches"),
        (post("/runs/a/batches", content=b"", headers={"content-length": str(MAX_BODY_BYTES + 1), **mp}), 413, "MiB"),
        (post("/runs", json={"run": _run("../etc")}), 400, "run.id"),
        (post("/runs", json={"run": _run("a")}), 409, "already exists"),
        (post("/runs", json={"run": {**_run("c"), "created_at": "yesterday"}}), 422, "created_at"),
        (post("/runs", json={"run": {**_run("c"), "pid": 2**70}}), 422, "pid"),
        (post("/runs", content=b"[1,", headers={"content-type": "application/json"}), 422, ""),
        (post("/runs/a/status", json={"status": "exploded"}), 422, "status"),
        (post("/runs/search", json={"conditions": [{"scope": "files", "key": "x", "op": "=", "value": 1}]}), 422, "scope"),
        (post("/runs/nope/reopen", json={"host": "h", "pid": 1, "now": 1.0}), 404, "no run matches"),
        (api.get("/api/store/runs/nope"), 404, "no run matches"),
        (api.get("/api/store/runs/a/metrics/series"), 422, "key"),
        (api.get("/api/store/runs/a/media/file", params={"key": "../../runpoint.db", "step": 0}), 404, "no file"),
        (api.put("/api/store/runs/a/ranks/70000", json={"started_at": 1.0, "heartbeat_at": 1.0}), 422, "rank"),
        (api.delete("/api/store/runs/nope"), 404, "no run matches"),
    ]
    for number, (response, status, words) in enumerate(cases):
        assert (number, response.status_code) == (number, status), response.text
        assert words in response.json()["detail"] if words else response.json()["detail"]
    assert api.get("/api/store/runs/a/metrics").json() == []  # nothing of the refused batches was applied


def test_an_oversized_streamed_body_is_refused_while_reading(api) -> None:
    def chunks():  # no content-length: the server counts what arrives
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
            yield b"\x00" * (1 << 20)

    response = api.post("/api/store/runs/a/batches", content=chunks(), headers={"content-type": MSGPACK})
    assert response.status_code == 413


def test_a_limited_token_reaches_only_its_project_and_its_scope(api) -> None:
    _As.who = Principal(user="ada", scope="write", project="p")
    assert api.get("/api/store/runs/a").status_code == 200
    for response in (api.get("/api/store/runs/b"), api.get("/api/store/runs/b/params"),
                     api.post("/api/store/runs/b/batches", json={"heartbeat_at": 2.0}),
                     api.delete("/api/store/runs/b"), api.post("/api/store/runs", json={"run": _run("c", "q")}),
                     api.post("/api/store/runs/search", json={"project": "q"}), api.get("/api/store/count?project=q")):
        assert response.status_code == 403 and "limited to project 'p'" in response.json()["detail"]
    assert [r["id"] for r in api.post("/api/store/runs/search", json={}).json()] == ["a"]
    assert [r["id"] for r in api.get("/api/store/runs", params={"text": "b"}).json()] == []
    assert api.get("/api/store/count").json() == {"count": 1}
    assert api.get("/api/store/runs/nope/params").json() == {}  # an unknown run: nothing to protect
    _As.who = Principal(user="bob", scope="read", project=None)
    denied = api.post("/api/store/runs/a/batches", json={"heartbeat_at": 2.0})
    assert denied.status_code == 403 and "scope is read" in denied.json()["detail"]
    assert api.get("/api/store/runs/b").status_code == 200
    assert api.audited == [("run.create", "p", "a", "local"), ("run.create", "q", "b", "local"),  # type: ignore[attr-defined]
                           ("run.get", "p", "a", "ada"), ("run.get", "q", "b", "bob")]


def test_http_store_maps_errors_and_keeps_the_token_out_of_messages(api, monkeypatch) -> None:
    import httpx

    sent: set[str] = set()

    class _Through(httpx.BaseTransport):  # HttpStore over the TestClient's app, no socket
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            sent.add(request.headers.get("authorization", ""))
            response = api._transport.handle_request(request)
            return httpx.Response(response.status_code, headers=response.headers, content=response.read())

    monkeypatch.setenv("RUNPOINT_TOKEN", "rp_secret_token_value")
    store = HttpStore("http://testserver", session=HttpSession("http://testserver", transport=_Through(), retries=0))
    series = MetricSeries(array("q", [1, 2]), array("d", [float("nan"), 2.5]), array("d", [1.0, 2.0]))
    store.write("a", WriteBatch(metrics={"x": series}, summary={"best": float("inf")}, sequence=1))
    assert store.read_metric("a", "x") == series and store.get_summary("a") == {"best": float("inf")}
    store.write("a", WriteBatch(metrics={"x": series}, sequence=1))  # a resent batch: applied once
    assert len(store.read_metric("a", "x")) == 2
    with pytest.raises(RunNotFoundError):
        store.get_run("nope")
    with pytest.raises(InvalidArgumentError, match="run.id"):
        store.create_run(RunRecord("bad id", "p", "n", RunStatus.RUNNING, 1.0, 1.0, "p/bad id"))
    _As.who = Principal(user="ada", scope="read", project="p")
    with pytest.raises(AccessDeniedError) as denied:
        store.write("a", WriteBatch(heartbeat_at=5.0))
    assert denied.value.status == 403 and "rp_secret" not in str(denied.value) and "rp_secret" not in repr(store)
    in_url = HttpStore("x", session=HttpSession("http://rp_in_url@testserver", transport=_Through(), retries=0))
    assert in_url.count_runs() == 1 and "rp_in_url" not in repr(in_url)
    assert sent == {"Bearer rp_secret_token_value", "Bearer rp_in_url"}
    assert [run.id for run in store.list_runs(RunQuery())] == ["a"]


@pytest.mark.slow
def test_two_server_processes_on_one_database_serve_one_store(postgres_url, tmp_path, monkeypatch) -> None:
    from runpoint.server.accounts import Accounts

    with Accounts(postgres_url) as accounts:  # the servers check tokens in the database they share
        accounts.add_user("ci")
        monkeypatch.setenv("RUNPOINT_TOKEN", accounts.create_token("ci", "write").text)
    first, url1 = start_server_process(postgres_url, tmp_path)
    try:
        second, url2 = start_server_process(postgres_url, tmp_path, "--workers", "2")
        try:
            stores = [open_store(url1), open_store(url2)]
            for i, store in enumerate(stores):
                store.create_run(RunRecord(f"r{i}", "p", f"n{i}", RunStatus.RUNNING, time.time(), time.time(), "x"))
            for turn in range(20):  # both runs, through both servers in turn
                for i in range(2):
                    steps = array("q", [turn])
                    stores[(turn + i) % 2].write(f"r{i}", WriteBatch(metrics={"loss": MetricSeries(
                        steps, array("d", [turn + i / 10]), array("d", [1.0]))}, sequence=turn))
            stores[0].write("r1", WriteBatch(metrics={"loss": MetricSeries(array("q", [99]), array("d", [0.0]),
                                                                              array("d", [1.0]))}, sequence=3))
            for store in stores:  # the union, the resent batch (sequence 3) applied once
                assert sorted(run.id for run in store.list_runs()) == ["r0", "r1"]
                assert store.get_run("r1").dir == "p/r1"  # the server names the directory
                for i in range(2):
                    assert list(store.read_metric(f"r{i}", "loss").values) == [t + i / 10 for t in range(20)]
            assert open_store(postgres_url).count_runs("p") == 2
        finally:
            stop_server_process(second)
    finally:
        stop_server_process(first)


@pytest.mark.slow
def test_the_store_api_never_answers_5xx_to_fuzzed_input(postgres_url) -> None:
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings

    app = create_server_app(postgres_url)  # the team server's database: its refusals (NUL in text...) are 4xx too
    TestClient(app).post("/api/store/runs", json={"run": _run("a")})
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app).include(path_regex="^/api/store/")
    failures: list[str] = []
    store = app.state.dashboard.store
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25  # every route of the store API is in the schema

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case: Any) -> None:
            if not store.find_runs("a"):  # a fuzzed DELETE removed it
                store.create_run(RunRecord("a", "p", "a", RunStatus.RUNNING, 1.0, 1.0, "p/a"))
            if "run_id" in (case.path_parameters or {}) and case.path_parameters["run_id"] != "b":
                case.path_parameters["run_id"] = "a"  # a run that exists, so that writes get past the 404
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} {case.body!r:.200} -> "
                                f"{response.status_code}: {response.text[:200]}")

        check()
    app.state.dashboard.store.close()
    assert not failures, "\n".join(failures[:10])


def test_runpoint_server_refuses_unsafe_or_incomplete_options(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from runpoint.cli.main import app

    db = f"sqlite:///{tmp_path}/runpoint.db"
    for args, words in ((["--host", "0.0.0.0", "--no-auth"], "only on loopback"),
                        (["--ssl-certfile", str(tmp_path)], "go together"),
                        (["--ssl-certfile", "missing.pem", "--ssl-keyfile", "missing.key"], "no such file")):
        result = CliRunner().invoke(app, ["server", "--db", db, *args])
        assert result.exit_code == 2 and words in result.output, result.output
    result = CliRunner().invoke(app, ["server", "--db", "postgresql://ada:hunter2@127.0.0.1:1/x"])
    assert result.exit_code == 1 and "hunter2" not in result.output and "127.0.0.1:1" in result.output
    assert not (tmp_path / "runpoint.db").exists()  # refused before anything was created


def test_connections_of_ended_threads_are_closed_not_leaked(postgres_url) -> None:
    # a web server's thread pool retires idle threads and starts new ones: each thread's
    # PostgreSQL connection must go with it, or a long-running server exhausts max_connections
    import threading

    import psycopg

    store = open_store(postgres_url)
    database = postgres_url.rsplit("/", 1)[1]

    def sessions(expected: int) -> int:  # a closed session's backend leaves pg_stat_activity soon after
        for _ in range(100):
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (database,)).fetchone()
            if int(row[0]) - 1 == expected:  # not counting this one
                break
            time.sleep(0.05)
        return int(row[0]) - 1

    try:
        for _ in range(6):  # six threads in turn, each reading once and ending
            thread = threading.Thread(target=store.count_runs)
            thread.start()
            thread.join()
        counted, done = threading.Event(), threading.Event()

        def seventh() -> None:  # connects, and the ended threads' connections close
            store.count_runs()
            counted.set()
            done.wait()

        thread = threading.Thread(target=seventh)
        thread.start()
        counted.wait()
        assert sessions(2) == 2  # the opening thread's and the seventh's, not six more
        done.set()
        thread.join()
    finally:
        store.close()
    assert sessions(0) == 0


def test_the_server_caps_its_threads_and_so_its_database_connections(tmp_path) -> None:
    import anyio.to_thread

    app = create_server_app(f"sqlite:///{tmp_path}/runpoint.db", threads=7)
    with TestClient(app) as client:  # runs the lifespan, as uvicorn does
        assert client.get("/api/store/count").json() == {"count": 0}
        assert client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens) == 7
    app.state.dashboard.store.close()
