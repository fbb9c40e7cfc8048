"""Live updates: RunFollower on every store backend, and the SSE route on the team server with its tokens.

The browser side (EventSource, the fallback to polling, the 1 s latency) is in
tests/test_dashboard_live.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from array import array
from pathlib import Path
from typing import Any, Iterator

import pytest

from runpoint.server.live import MAX_POINTS_PER_KEY, RunFollower, parse_after
from runpoint.store import MetricSeries, RunRecord, RunStatus, Store, WriteBatch

from .test_store_contract import BACKENDS

pytest.importorskip("fastapi")


@pytest.fixture(params=sorted(BACKENDS))
def store(request, tmp_path) -> Iterator[Store]:  # noqa: ANN001
    backend = BACKENDS[request.param](request, tmp_path)
    yield backend
    backend.close()


def _points(steps: list[int], values: list[float] | None = None) -> MetricSeries:
    values = values if values is not None else [float(s) for s in steps]
    return MetricSeries(array("q", steps), array("d", values), array("d", [1000.0 + s for s in steps]))


def _running(store: Store, run_id: str = "r1", project: str = "p") -> None:
    import os
    import socket as sock

    now = time.time()
    store.create_run(RunRecord(id=run_id, project=project, name=run_id, status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir=f"{project}/{run_id}", host=sock.gethostname(), pid=os.getpid()))


def _by_name(events: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    names = [name for name, _ in events]
    assert len(names) == len(set(names)), names
    return dict(events)


def test_the_follower_sends_what_is_new_and_only_that(store: Store) -> None:
    _running(store)
    store.write("r1", WriteBatch(metrics={"loss": _points([0, 1, 2, 3]), "lr": _points([0])}))
    follower = RunFollower(store, "r1", after={"loss": 1}, since=3)  # lr: last step 0 < since: nothing, no reload
    first = _by_name(follower.poll())
    assert first["state"]["status"] == "running"
    assert first["metrics"] == {"loss": {"steps": [2, 3], "values": [2.0, 3.0], "times": [1002.0, 1003.0]}}
    assert set(first) == {"state", "metrics"}
    assert follower.poll() == []  # nothing new: nothing sent

    store.write("r1", WriteBatch(metrics={"loss": _points([4, 5], [float("nan"), 0.5]), "acc": _points([4, 5])}))
    second = _by_name(follower.poll())
    assert second["metrics"]["loss"] == {"steps": [4, 5], "values": [None, 0.5], "times": [1004.0, 1005.0]}
    assert second["metrics"]["acc"]["steps"] == [4, 5]  # a new key: from its first point after `since`
    assert set(second) == {"metrics"}

    store.truncate_metrics("r1", after_step=2)  # a resume from the checkpoint of step 2
    assert sorted(_by_name(follower.poll())["reload"]["keys"]) == ["acc", "loss"]  # acc has no points left
    store.write("r1", WriteBatch(metrics={"loss": _points([3])}))
    assert _by_name(follower.poll())["metrics"]["loss"]["steps"] == [3]  # the new attempt's points follow

    store.set_status("r1", RunStatus.COMPLETED, ended_at=time.time())
    last = follower.poll()
    assert [name for name, _ in last] == ["state", "end"] and last[1][1] == {"status": "completed"}
    assert follower.ended


def test_a_backlog_too_long_for_one_event_is_a_reload(tmp_path: Path) -> None:
    from runpoint.store import open_store

    store = open_store(tmp_path / "root")
    try:
        _running(store)
        store.write("r1", WriteBatch(metrics={"big": _points(list(range(MAX_POINTS_PER_KEY + 1))), "small": _points([0])}))
        events = _by_name(RunFollower(store, "r1").poll())
        assert events["reload"] == {"keys": ["big"]} and events["metrics"] == {"small": {"steps": [0], "values": [0.0],
                                                                                        "times": [1000.0]}}
    finally:
        store.close()


def test_after_is_checked() -> None:
    assert parse_after('{"a/b": 3}') == {"a/b": 3} and parse_after(None) == {}
    for bad in ("[1]", '{"a": 1.5}', '{"a": true}', "{"):
        with pytest.raises(ValueError):
            parse_after(bad)


class _Served:
    """An app under uvicorn in a thread, on a free loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                                    timeout_graceful_shutdown=1))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


def _events(lines: Iterator[str], until: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    name = None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: ") and name:
            found.append((name, json.loads(line[6:])))
            if name == until:
                return found
    return found


def test_the_team_server_streams_to_a_token_of_the_project_and_offers_no_tensorboard(tmp_path: Path) -> None:
    import httpx

    from runpoint.server.accounts import Accounts
    from runpoint.server.authn import install_accounts
    from runpoint.server.team import create_server_app

    db = f"sqlite:///{tmp_path}/runpoint.db"
    accounts = Accounts(db)
    accounts.add_user("ada")
    reader = accounts.create_token("ada", "read", project="team").text
    stranger = accounts.create_token("ada", "read", project="other").text
    app = create_server_app(db, accounts=lambda a: install_accounts(a, accounts, audit_interval_s=0.1))
    store = app.state.dashboard.store
    _running(store, "r1", project="team")
    store.write("r1", WriteBatch(metrics={"loss": _points([0, 1])}))
    served = _Served(app)
    try:
        stream = f"{served.url}/api/runs/r1/stream"
        assert httpx.get(stream, params={"since": 1}).status_code == 401
        refused = httpx.get(stream, params={"since": 1}, headers={"authorization": f"Bearer {stranger}"})
        assert refused.status_code == 403 and "project" in refused.json()["detail"]
        assert httpx.get(f"{served.url}/api/runs/r1/tensorboard", cookies={"runpoint_token": reader}).status_code == 404

        def finish_later() -> None:
            time.sleep(0.5)
            store.write("r1", WriteBatch(metrics={"loss": _points([2])}))
            store.set_status("r1", RunStatus.COMPLETED, ended_at=time.time())

        threading.Thread(target=finish_later).start()
        # the cookie, as EventSource sends it (it cannot set headers)
        with httpx.stream("GET", stream, params={"since": 1}, cookies={"runpoint_token": reader}, timeout=30) as reply:
            assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
            events = _events(reply.iter_lines(), until="end")
        names = [name for name, _ in events]
        assert names[0] == "state" and names[-1] == "end", names
        sent = [step for name, data in events if name == "metrics" for step in data["loss"]["steps"]]
        assert sent == [2]  # only what came after the cursor, then the end
    finally:
        served.stop()
        accounts.close()
        store.close()


def test_streams_are_bounded_and_given_back_when_the_client_leaves(tmp_path: Path) -> None:
    import httpx

    from runpoint.server.api_live import StreamSlots
    from runpoint.server.app import create_app
    from runpoint.store import open_store

    open_store(tmp_path / "root").close()
    app = create_app(tmp_path / "root")
    store = app.state.dashboard.store
    _running(store)
    served = _Served(app)
    try:
        threads_before = threading.active_count()
        with httpx.stream("GET", f"{served.url}/api/runs/r1/stream", timeout=10) as reply:
            assert reply.status_code == 200
            lines = reply.iter_lines()  # kept: a generator dropped closes the connection
            assert _events(lines, until="state")[0][1]["status"] == "running"
            slots: StreamSlots = app.state.live_streams
            assert slots.open == 1
            slots.limit = 1
            busy = httpx.get(f"{served.url}/api/runs/r1/stream")
            assert busy.status_code == 503 and "polls instead" in busy.json()["detail"]
        deadline = time.monotonic() + 10
        while slots.open and time.monotonic() < deadline:  # the server notices within a poll
            time.sleep(0.05)
        assert slots.open == 0, "the stream of a client that left was not closed"
        assert threading.active_count() <= threads_before + slots.limiter.total_tokens
    finally:
        served.stop()
        store.close()
