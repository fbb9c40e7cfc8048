"""rp.load_checkpoint and verify_checkpoint accept the ``latest`` and ``best`` pointer files."""

from __future__ import annotations

from pathlib import Path

import torch

import runpoint as rp
from runpoint.checkpoint.load import verify_checkpoint


def test_the_pointer_files_load_the_checkpoint_they_name(root: Path) -> None:
    with rp.init(project="p", id="ptr1", root=root, console=False) as run:
        manager = rp.CheckpointManager(run, monitor="val/loss")
        for step, loss in ((1, 0.2), (2, 0.5)):
            manager.save(step, {"step": step, "w": torch.full((2,), float(step))}, metrics={"val/loss": loss})
    checkpoints = root / "p" / "ptr1" / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step-000002"
    latest = rp.load_checkpoint(str(checkpoints / "latest"))
    assert latest["step"] == 2 and torch.equal(latest["w"], torch.full((2,), 2.0))
    best = rp.load_checkpoint(checkpoints / "best")
    assert best["step"] == 1
    [result] = verify_checkpoint(checkpoints / "best")
    assert result.ok and result.step == 1
