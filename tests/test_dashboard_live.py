"""Live updates and TensorBoard in headless Chromium against a real `runpoint ui`.

A run of this test process logs into the root the server serves: a flushed point must be
drawn within a second, by Server-Sent Events (the one timing assertion of the suite: the
issue asks for it); with the stream blocked the page polls and still follows the run.
"Open in TensorBoard" starts a real TensorBoard, which must be gone once the dashboard has
exited.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .dashboard_fixtures import browser_or_skip, running_server, screenshot

pytest.importorskip("fastapi")

LATENCY_LIMIT_MS = 1000
LAST_X = "(key) => Number(document.querySelector(`.chart-card[data-key='${key}']`)?.dataset.lastX)"


@pytest.fixture
def browser():  # noqa: ANN201
    manager, browser = browser_or_skip()
    yield browser
    browser.close()
    manager.stop()


def _page(browser, server, errors: list[str]):  # noqa: ANN001, ANN202
    context = browser.new_context(viewport={"width": 1300, "height": 820})
    page = context.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(20_000)
    page.goto(server.token_url)
    return context, page


def _wait_step(page, key: str, step: int, timeout: float = 20_000) -> None:  # noqa: ANN001
    page.wait_for_function(f"([key, step]) => ({LAST_X})(key) >= step", arg=[key, step], timeout=timeout)


@pytest.mark.slow  # a browser, a server and a live run: ~10 s
def test_a_flushed_point_is_drawn_within_a_second_by_sse_and_polling_takes_over_when_sse_fails(
        tmp_path: Path, browser) -> None:  # noqa: ANN001
    import runpoint as rp

    root = tmp_path / "runpoint"
    run = rp.init(project="live", name="live-run", root=root, console=False, system_metrics=False)
    try:
        for step in range(20):
            run.log({"train/loss": 1.0 / (step + 1)}, step=step)
        run.flush()
        errors: list[str] = []
        with running_server(root) as server:
            context, page = _page(browser, server, errors)
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server.url + f"#/run/{run.id}")
            page.locator(".chart-card[data-key='train/loss'] canvas").wait_for()
            page.wait_for_function("() => document.body.dataset.live === 'sse'")
            _wait_step(page, "train/loss", 19)
            series_fetches = sum("/series?" in url for url in requests)
            latencies = []
            for step in range(20, 26):
                run.log({"train/loss": 1.0 / (step + 1)}, step=step)
                assert run.flush(10)
                flushed_ms = time.time() * 1000
                _wait_step(page, "train/loss", step, timeout=10_000)
                drawn_ms = int(page.locator(".chart-card[data-key='train/loss']").get_attribute("data-live-at"))
                latencies.append(drawn_ms - flushed_ms)
                time.sleep(0.3)
            print("SSE latencies (ms, flush -> drawn in the browser):", [round(x) for x in latencies])
            assert max(latencies) < LATENCY_LIMIT_MS, (
                f"a point flushed by the run reached the chart after {max(latencies):.0f} ms "
                f"(limit {LATENCY_LIMIT_MS} ms; all: {[round(x) for x in latencies]})")
            assert any("/stream?" in url for url in requests), "the page did not open the event stream"
            assert not any(url.split("?")[0].endswith("/state") for url in requests), "the page polled despite SSE"
            assert sum("/series?" in url for url in requests) == series_fetches, "points were refetched, not appended"
            assert page.locator(".chart-card[data-key='train/loss']").get_attribute("data-total") == "26"
            page.locator("#open-tensorboard").wait_for()  # offered: exported on demand (no sink here)
            screenshot(page, "run-live-sse")

            blocked_context, blocked = _page(browser, server, errors)
            blocked_requests: list[str] = []
            blocked.on("request", lambda request: blocked_requests.append(request.url))
            blocked.route("**/stream?*", lambda route: route.abort())
            blocked.goto(server.url + f"#/run/{run.id}")
            blocked.wait_for_function("() => document.body.dataset.live === 'polling'")
            _wait_step(blocked, "train/loss", 25)
            run.log({"train/loss": 0.01, "val/acc": 0.5}, step=26)  # a new key too: the charts are laid out again
            assert run.flush(10)
            _wait_step(blocked, "train/loss", 26)
            blocked.locator(".chart-card[data-key='val/acc'] canvas").wait_for()
            assert any(url.split("?")[0].endswith("/state") for url in blocked_requests)
            blocked_context.close()

            _wait_step(page, "train/loss", 26)  # the SSE page got the new key as well
            page.locator(".chart-card[data-key='val/acc'] canvas").wait_for()
            run.finish()
            page.locator(".run-head .badge[data-status='completed']").wait_for()
            page.wait_for_function("() => document.body.dataset.live === 'ended'")
            context.close()
        assert errors == [], errors
    finally:
        run.finish()  # idempotent


@pytest.mark.slow  # starts a real TensorBoard (seconds) and a dashboard that is stopped
def test_open_in_tensorboard_starts_one_per_run_and_it_dies_with_the_dashboard(tmp_path: Path, browser) -> None:  # noqa: ANN001
    import threading

    import httpx
    import psutil

    import runpoint as rp

    root = tmp_path / "runpoint"
    with rp.init(project="tb", name="with-sink", root=root, console=False, system_metrics=False,
                 sinks=["tensorboard"]) as run:
        for step in range(50):
            run.log({"train/loss": 1.0 / (step + 1)}, step=step)
    running = rp.init(project="tb", name="still-running", root=root, console=False, system_metrics=False)
    errors: list[str] = []
    with running_server(root) as server:
        context, page = _page(browser, server, errors)
        page.goto(server.url + f"#/run/{run.id}")
        button = page.locator("#open-tensorboard")
        button.wait_for()
        assert (root / "tb" / run.id / "tensorboard").as_posix() in button.get_attribute("title")  # the sink's directory
        button.click()
        link = page.locator("#tensorboard-link")
        link.wait_for(timeout=90_000)
        url = link.get_attribute("href")
        assert url.startswith("http://127.0.0.1:")
        screenshot(page, "run-tensorboard-link")
        tags = httpx.get(url + "data/plugin/scalars/tags", timeout=30).json()
        assert "train/loss" in next(iter(tags.values())), tags  # TensorBoard reads the run's event files
        again = httpx.post(server.url + "api/tensorboard", json={"runs": [run.id]}, headers=server.auth, timeout=60).json()
        assert again["url"] == url and again["reused"] is True  # one TensorBoard per run set
        pid = again["pid"]
        assert psutil.Process(pid).is_running()
        context.close()
        stream_open = threading.Event()

        def follow() -> None:  # a page left open on a running run
            with httpx.stream("GET", server.url + f"api/runs/{running.id}/stream", headers=server.auth, timeout=60) as reply:
                for _ in reply.iter_lines():
                    stream_open.set()

        threading.Thread(target=follow, daemon=True).start()
        assert stream_open.wait(20)
        server.process.terminate()  # as Ctrl-C / a service manager stops `runpoint ui`
        server.process.wait(30)
        stderr = server.process.stderr.read()
        assert "graceful shutdown exceeded" not in stderr, stderr  # the open stream ended, it was not cancelled
    running.finish()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid), f"TensorBoard (pid {pid}) outlived the dashboard"
    assert errors == [], errors


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except OSError:
        return os.path.exists(f"/proc/{pid}")
