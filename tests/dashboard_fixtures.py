"""Helpers for the dashboard tests: a real root, a real `runpoint ui` server, headless Chromium.

The server is the real CLI (`python -m runpoint ui --port 0`) in a child process on
127.0.0.1, with the token it makes up by default (`Server.auth` for API clients,
`Server.token_url` for a browser); the fixture stops it, and every process it launched,
when the tests end.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]


def make_runs(root: Path) -> dict[str, str]:
    """A root with runs of two projects, statuses, params, tags, a long metric, checkpoints and media.

    Returns names -> run ids.
    """
    import runpoint as rp

    ids: dict[str, str] = {}
    for index, (lr, tag) in enumerate([(1e-3, "baseline"), (3e-3, "wide"), (1e-2, "wide")]):
        config = {"training": {"learning_rate": lr, "epochs": 3}, "model": {"width": 64 * (index + 1)}}
        with rp.init(project="vision", name=f"cnn-{index}", config=config, tags=["cnn", tag], root=root,
                     console=False) as run:
            for step in range(300):
                epoch = step // 100
                run.log({"train/loss": 2.0 / (1 + step * lr * 10) + 0.01 * index, "epoch": epoch}, step=step)
                if step % 100 == 99:
                    run.log({"val/acc": 0.5 + 0.1 * epoch + 0.05 * index}, step=step)
            run.summary["best/val_acc"] = 0.7 + 0.05 * index
            ids[run.name] = run.id
    with pytest.raises(RuntimeError):
        with rp.init(project="vision", name="broken", config={"training": {"learning_rate": 1.0}}, root=root,
                     console=False) as run:
            run.log({"train/loss": math.nan}, step=0)
            raise RuntimeError("diverged")
    ids["broken"] = run.id
    with rp.init(project="nlp", name="long", config={"training": {"learning_rate": 5e-4}}, root=root,
                 console=False) as run:
        ids["long"] = run.id
    _write_long_metric(root, ids["long"])
    _write_files(root, "vision", ids["cnn-0"])
    return ids


def _write_long_metric(root: Path, run_id: str, points: int = 200_000) -> None:
    """200k points with one spike (at step 123 456) and one dip, stored through the real write path."""
    from array import array

    from runpoint.store import MetricSeries, WriteBatch
    from runpoint.store.sqlite import SQLiteStore

    store = SQLiteStore(root / "runpoint.db")
    try:
        for start in range(0, points, 50_000):
            steps = array("q", range(start, start + 50_000))
            values = array("d", (1.0 + 0.001 * ((s * 7919) % 101) for s in steps))
            times = array("d", (1_700_000_000.0 + s * 0.01 for s in steps))
            for s, value in ((123_456, 50.0), (77_777, -5.0), (150_000, math.nan)):
                if start <= s < start + 50_000:
                    values[s - start] = value
            store.write(run_id, WriteBatch(metrics={"train/loss": MetricSeries(steps, values, times)}))
    finally:
        store.close()


def _write_files(root: Path, project: str, run_id: str) -> None:
    """A real checkpoint and real media of the run (through CheckpointManager and run.log), and a console log."""
    import numpy as np
    import torch

    import runpoint as rp

    with rp.init(project=project, resume=run_id, root=root, console=False, system_metrics=False) as run:
        ckpt = rp.CheckpointManager(run, keep_best=1, monitor="val/acc", mode="max")
        ckpt.save(100, {"w": torch.zeros(256)}, metrics={"val/acc": 0.6})
        pixels = np.zeros((4, 4, 3), dtype=np.uint8)
        pixels[1, 2] = (255, 0, 0)
        run.log({"samples": rp.Image(pixels), "weights": rp.Histogram.from_counts([0, 1, 2, 3], [3, 9, 4])}, step=100)
    run_dir = root / project / run_id
    (run_dir / "logs" / "console.log").write_text("epoch 1\n\x1b[32mgreen\x1b[0m line\nprogress 10%\rprogress 100%\n")


def write_series(store, steps: list[int], values: list[float]) -> str:  # noqa: ANN001
    """A new run in ``store`` whose metric ``m`` has these points; returns its id."""
    import secrets
    from array import array

    from runpoint.store import MetricSeries, RunRecord, RunStatus, WriteBatch

    run_id = "t" + secrets.token_hex(6)
    store.create_run(RunRecord(id=run_id, project="p", name=run_id, status=RunStatus.COMPLETED,
                               created_at=0.0, heartbeat_at=0.0, dir=f"p/{run_id}"))
    series = MetricSeries(array("q", steps), array("d", values), array("d", [float(s) for s in steps]))
    store.write(run_id, WriteBatch(metrics={"m": series}))
    return run_id


class Server:
    """A `runpoint ui` child process, its base URL, its token (None with --no-token) and the line it printed."""

    def __init__(self, process: subprocess.Popen[str], url: str, token: str | None, root: Path, line: str) -> None:
        self.process = process
        self.url = url
        self.token = token
        self.root = root
        self.line = line

    @property
    def token_url(self) -> str:
        """The URL `runpoint ui` opens in the browser: visiting it sets the token cookie."""
        return self.url + (f"?token={self.token}" if self.token else "")

    @property
    def auth(self) -> dict[str, str]:
        """Headers that carry the token, for an API client."""
        return {"authorization": f"Bearer {self.token}"} if self.token else {}

    def stop(self) -> None:
        _stop_launched(self.root)
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def _stop_launched(root: Path) -> None:
    """Kill whatever the dashboard launched and left running (tests clean up their processes).

    Only processes that started when the launch recorded: a pid may have gone to another one.
    """
    import psutil

    for record in (root / ".launches").glob("*/launch.json"):
        launch = json.loads(record.read_text())
        try:
            if abs(psutil.Process(launch["pid"]).create_time() - (launch.get("pid_started_at") or 0)) > 0.05:
                continue
            os.killpg(launch["pid"], signal.SIGKILL)
        except (psutil.NoSuchProcess, ProcessLookupError, PermissionError):
            pass


@contextmanager
def running_server(root: Path, *extra: str) -> Iterator[Server]:
    env = dict(os.environ)
    env.pop("RUNPOINT_ROOT", None)
    env.pop("RUNPOINT_UI_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "runpoint", "ui", "--root", str(root), "--port", "0", "--no-browser", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=root.parent,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+/)(?:\?token=(\S+))?", line)
    server = Server(process, match.group(1) if match else "", match.group(2) if match else None, root, line)
    try:
        if not match:
            raise AssertionError(f"runpoint ui did not print its URL: {line!r} {process.stderr.read() if process.stderr else ''}")
        yield server
    finally:
        server.stop()


def browser_or_skip():  # noqa: ANN201 - returns playwright objects
    """(playwright, browser); skips outside CI when Chromium or Playwright is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed")
    if not shutil.which(CHROMIUM) and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    manager = sync_playwright().start()
    browser = manager.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return manager, browser


def screenshot(page, name: str) -> Path:  # noqa: ANN001
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
