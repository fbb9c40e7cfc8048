"""Accelerate's tracker API, in one process and in a real two-process (gloo) job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from .conftest import child_env, free_port, write_script

pytest.importorskip("accelerate")

TRAIN = """
import torch
from accelerate import Accelerator
from runpoint.integrations.accelerate import RunpointTracker

accelerator = Accelerator(cpu=True, log_with=RunpointTracker(project="acc", tags=["ddp"]))
accelerator.init_trackers("acc", config={"optimizer": {"lr": 0.1}, "api_key": "s3cret"})
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
model, optimizer = accelerator.prepare(model, optimizer)
for step in range(20):
    loss = model(torch.randn(8, 4)).pow(2).mean()
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()
    accelerator.log({"train/loss": loss, "rank": accelerator.process_index, "phase": "warmup"}, step=step)
run = accelerator.get_tracker("runpoint", unwrap=True)
if accelerator.is_main_process:
    print("run", run.id, flush=True)
accelerator.end_training()
"""


def _check_run(root: Path, run_id: str) -> None:
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == 1  # one run for the whole job
        run = store.get_run(run_id)
        assert run.status is rp.RunStatus.COMPLETED and run.tags == ("ddp",)
        assert store.get_params(run_id) == {"optimizer.lr": 0.1, "api_key": "********"}
        assert list(store.read_metric(run_id, "train/loss").steps) == list(range(20))
        assert set(store.read_metric(run_id, "rank").values) == {0.0}  # only the main process logged
        assert store.get_summary(run_id) == {"phase": "warmup"}


def test_the_tracker_starts_a_run_with_the_config_and_finishes_it(root: Path) -> None:
    from accelerate import Accelerator

    from runpoint.integrations.accelerate import RunpointTracker

    accelerator = Accelerator(cpu=True, log_with=RunpointTracker(project="acc", root=root, tags=["ddp"]))
    accelerator.init_trackers("acc", config={"optimizer": {"lr": 0.1}, "api_key": "s3cret"})
    for step in range(20):
        accelerator.log({"train/loss": 1.0 / (step + 1), "rank": 0, "phase": "warmup"}, step=step)
    run = accelerator.get_tracker("runpoint", unwrap=True)
    accelerator.end_training()
    assert run.status is rp.RunStatus.COMPLETED
    _check_run(root, run.id)


@pytest.mark.slow  # two processes importing accelerate, ~11 s
def test_two_processes_record_one_run_from_the_main_process(tmp_path: Path, root: Path) -> None:
    script = write_script(tmp_path, TRAIN)
    env = child_env(root, OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script)]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    ids = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("run ")]
    assert len(ids) == 1
    _check_run(root, ids[0])


def test_a_run_given_to_the_tracker_is_used_and_left_open(root: Path) -> None:
    from accelerate import Accelerator

    from runpoint.integrations.accelerate import RunpointTracker

    with rp.init(project="acc", root=root, config={"seed": 1}) as run:
        accelerator = Accelerator(cpu=True, log_with=RunpointTracker(run=run))
        accelerator.init_trackers("acc", config={"lr": 0.5})
        accelerator.log({"x": 1.0}, step=3)
        accelerator.end_training()
        assert run.status is rp.RunStatus.RUNNING
        assert run.config == {"seed": 1, "lr": 0.5}
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.get_params(run.id) == {"seed": 1, "lr": 0.5}
        assert list(store.read_metric(run.id, "x").points())[0][:2] == (3, 1.0)


def test_the_readme_example_runs(root: Path) -> None:
    import runpy

    from .conftest import REPO

    runpy.run_path(str(REPO / "examples" / "accelerate_tracker.py"), run_name="__main__")
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = store.list_runs()
        assert run.project == "accelerate" and run.status is rp.RunStatus.COMPLETED
        assert store.get_params(run.id) == {"optimizer.lr": 0.1}
        assert len(store.read_metric(run.id, "train/loss")) == 20
