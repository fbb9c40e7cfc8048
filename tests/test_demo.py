"""`runpoint demo` trains on scikit-learn's digits and leaves a complete run behind."""

from __future__ import annotations

import json

import pytest

from .conftest import cli


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_demo_records_a_complete_run(tmp_path) -> None:
    root = tmp_path / "runs"
    result = cli(root, "demo", "--epochs", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "runpoint show" in result.stdout and "done" in result.stdout
    runs = json.loads(cli(root, "ls", "--json").stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["project"] == "demo"
    details = json.loads(cli(root, "show", runs[0]["id"], "--json").stdout)
    metrics = details["metrics"]
    assert {"train/loss", "train/acc", "train/lr", "val/loss", "val/acc", "perf/step_time_ms"} <= set(metrics)
    assert metrics["val/acc"]["count"] == 3
    assert metrics["val/acc"]["last"] > 0.6                  # it learns
    assert metrics["train/loss"]["last"] < metrics["train/loss"]["max"]
    assert details["summary"]["best/val_acc"] == metrics["val/acc"]["max"]
    assert details["params"]["training.epochs"] == 3
    run_dir = root / "demo" / runs[0]["id"]
    assert "epoch  3/3" in (run_dir / "logs" / "console.log").read_text()
