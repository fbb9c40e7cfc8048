"""Dashboard: time from request to a drawn chart (1 000 000 points) and to a table of 1 000 runs.

Measured end to end in headless Chromium (Playwright) against a real ``runpoint ui``
server: navigation starts the clock, the chart's canvas holding the downsampled series
(or the table holding every row) stops it. Beside it, the server-side work: downsampling
the million points to chart buckets versus reading and encoding every point, which is what
a dashboard without server-side downsampling would ship.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from array import array
from pathlib import Path
from typing import Any

from ._harness import Context, Section, Table, best_of

TITLE = "Dashboard: a million-point chart and a thousand-run table"
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
TARGET_MS = 1000.0


def _fill_root(root: Path, points: int, runs: int) -> str:
    """A root with one run of ``points`` points of train/loss and ``runs`` small runs; returns the big run's id."""
    import math

    from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch
    from runpoint.store.sqlite import SQLiteStore

    store = SQLiteStore(root / "runpoint.db")
    now = time.time()
    try:
        big = "bigrun000001"
        store.create_run(RunRecord(id=big, project="bench", name="million", status=RunStatus.COMPLETED,
                                   created_at=now, heartbeat_at=now, dir=f"bench/{big}", ended_at=now))
        for start in range(0, points, 100_000):
            steps = array("q", range(start, min(points, start + 100_000)))
            values = array("d", (2.0 * math.exp(-s / 2e5) + 0.05 * math.sin(s * 0.37) for s in steps))
            times = array("d", (now + s * 0.001 for s in steps))
            store.write(big, WriteBatch(metrics={"train/loss": MetricSeries(steps, values, times)}))
        for index in range(runs):
            run_id = f"run{index:09d}"
            store.create_run(
                RunRecord(id=run_id, project="sweep", name=f"trial-{index}", status=RunStatus.COMPLETED,
                          created_at=now + index, heartbeat_at=now + index, dir=f"sweep/{run_id}", tags=("sweep",),
                          ended_at=now + index + 60),
                params={"training.learning_rate": 10 ** (-4 + index % 3), "model.width": 64 * (1 + index % 4)},
            )
            series = MetricSeries(array("q", range(10)), array("d", [1.0 / (i + 1 + index % 7) for i in range(10)]),
                                  array("d", [now] * 10))
            store.write(run_id, WriteBatch(metrics={"val/loss": series, "val/acc": series}, summary={"best/val_acc": 0.9}))
    finally:
        store.close()
    return big


TOKEN = "benchmark-token"  # runpoint ui requires a token; the benchmark passes one like any client


def _server(root: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "RUNPOINT_UI_TOKEN": TOKEN}
    process = subprocess.Popen([sys.executable, "-m", "runpoint", "ui", "--root", str(root), "--port", "0", "--no-browser"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        process.kill()
        raise RuntimeError(f"runpoint ui did not start: {line} {process.stderr.read() if process.stderr else ''}")
    import threading

    for pipe in (process.stdout, process.stderr):  # keep reading, so a full pipe never blocks the server
        if pipe:
            threading.Thread(target=pipe.read, daemon=True).start()
    return process, match.group(0)


def _browser_times(url: str, big: str, points: int, runs: int, repeats: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    chart_done = ("() => { const c = document.querySelector(\".chart-card[data-key='train/loss']\");"
                  f" return c && Number(c.dataset.total) === {points} && c.querySelector('canvas') !== null; }}")
    table_done = f"() => document.querySelectorAll('#runs-table tbody tr').length === {runs + 1}"
    times: dict[str, list[float]] = {"chart": [], "table": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for attempt in range(repeats + 1):  # the first round warms caches and is not counted
                for name, fragment, done in (("chart", f"#/run/{big}/charts", chart_done), ("table", "#/runs", table_done)):
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    context.add_cookies([{"name": "runpoint_token", "value": TOKEN, "url": url}])
                    page = context.new_page()
                    started = time.perf_counter()
                    page.goto(url + fragment)
                    page.wait_for_function(done, timeout=60_000, polling="raf")
                    elapsed = (time.perf_counter() - started) * 1000
                    if attempt:
                        times[name].append(elapsed)
                    context.close()
        finally:
            browser.close()
    return times


def run(ctx: Context) -> Section:
    points = ctx.size(1_000_000, 200_000, 20_000)
    runs = ctx.size(1_000, 200, 20)
    repeats = ctx.size(5, 2, 1)
    root = ctx.scratch("dashboard") / "runpoint"
    big = _fill_root(root, points, runs)

    from runpoint import query
    from runpoint._util.jsonable import dumps
    from runpoint.server.downsample import downsample_metric
    from runpoint.store.bulk import bulk_reader

    store = query.open_root(root)
    reader = bulk_reader(store)
    downsample_s = best_of(5, lambda: downsample_metric(reader, big, "train/loss", buckets=1400))
    full_s = best_of(3, lambda: dumps(query.metric_history(store, big, "train/loss").values, indent=None))
    store.close()

    section = Section(TITLE, __doc__ or "")
    process, url = _server(root)
    try:
        import httpx

        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
            response = client.get(f"/api/runs/{big}/series", params={"key": "train/loss", "points": 1400})
            response.raise_for_status()  # a benchmark of error pages measures nothing
            series_bytes = len(response.content)
            request_s = best_of(5, lambda: client.get(f"/api/runs/{big}/series", params={"key": "train/loss", "points": 1400}))
            table_request_s = best_of(3, lambda: client.get("/api/runs", params={"columns": "metrics.val/loss,summary.best/val_acc"}))
        full_bytes = len(dumps({"x": list(range(points)), "y": [0.123456789012345] * points}, indent=None).encode())
        browser: dict[str, list[float]] | None = None
        note = ""
        if shutil.which(CHROMIUM):
            try:
                browser = _browser_times(url, big, points, runs, repeats)
            except ImportError:
                note = "Playwright is not installed: browser timings skipped."
        else:
            note = f"{CHROMIUM} is missing: browser timings skipped (apt-get install -y chromium)."
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()

    numbers: dict[str, Any] = {
        "points": points, "runs": runs, "downsample_ms": downsample_s * 1000, "full_read_and_encode_ms": full_s * 1000,
        "series_request_ms": request_s * 1000, "series_payload_bytes": series_bytes, "full_payload_bytes": full_bytes,
        "runs_request_ms": table_request_s * 1000,
    }
    if browser:
        rows = []
        for name, label in (("chart", f"chart of {points:,} points"), ("table", f"runs table of {runs:,} runs")):
            median = statistics.median(browser[name])
            numbers[f"{name}_ms_median"] = median
            numbers[f"{name}_ms_best"] = min(browser[name])
            rows.append([label, median, min(browser[name]), TARGET_MS, median / TARGET_MS,
                         "yes" if median < TARGET_MS else "no"])
        section.tables.append(Table(
            ["page", "median ms", "best ms", "target ms", "median / target", "met"], rows,
            title="Request to drawn page (headless Chromium, navigation to canvas / last row)",
            note=f"{repeats} timed loads each after a warm-up load; each load is a fresh browser context.",
        ))
    section.tables.append(Table(
        ["work", "ms", "payload bytes", "ratio"],
        [
            ["downsample to 1 400 buckets (min/max, server)", downsample_s * 1000, series_bytes, 1.0],
            ["GET /series over HTTP (1 400 buckets)", request_s * 1000, series_bytes, request_s / downsample_s],
            ["read + JSON-encode every point (no downsampling)", full_s * 1000, full_bytes, full_s / downsample_s],
            [f"GET /runs ({runs + 1} runs, 2 picked columns)", table_request_s * 1000, "-", "-"],
        ],
        title="Server side",
        note="ratio: time relative to the downsampling itself. The full payload is what shipping every point "
             f"as JSON would cost: {full_bytes / max(series_bytes, 1):.0f}x the downsampled one." + (f"\n\n{note}" if note else ""),
    ))
    section.numbers = numbers
    return section
