"""The dashboard's checkpoint endpoints on a crafted run directory (13.5): no links followed, no hangs."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

import runpoint as rp

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from ..dashboard_fixtures import running_server  # noqa: E402


@pytest.mark.timeout(90)
def test_checkpoint_endpoints_follow_no_links_and_verify_never_hangs(tmp_path: Path) -> None:
    root = tmp_path / "runpoint"
    with rp.init(project="p", name="crafted", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, rng=False)
        for step in (1, 2, 3, 4):
            ckpt.save(step, {"w": torch.full((64,), float(step))})
    checkpoints = root / "p" / run.id / "checkpoints"
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n")
    (checkpoints / "latest").unlink()
    (checkpoints / "latest").symlink_to(secret)
    fifo = checkpoints / "step-000003" / "tensors.safetensors"
    fifo.unlink()
    os.mkfifo(fifo)
    outside = tmp_path / "outside"  # step 4: every file a link to an intact copy outside the run
    outside.mkdir()
    for path in (checkpoints / "step-000004").iterdir():
        (outside / path.name).write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(outside / path.name)

    with running_server(root) as server, httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
        listing = client.get(f"/api/runs/{run.id}/checkpoints").json()
        assert listing["latest"] is None and "secret" not in str(listing)
        assert client.post(f"/api/runs/{run.id}/checkpoints/2/verify").json()["ok"] is True
        started = time.monotonic()
        for step in (3, 4):
            result = client.post(f"/api/runs/{run.id}/checkpoints/{step}/verify").json()
            assert result["ok"] is False and len(result["problems"]) >= 1, result
        assert time.monotonic() - started < 20  # generous: a FIFO used to block forever
        [fifo_problem] = client.post(f"/api/runs/{run.id}/checkpoints/3/verify").json()["problems"]
        assert "tensors.safetensors" in fifo_problem and "FIFO" in fifo_problem
