"""The whole story on real gloo ranks: one run per job, sharded checkpoints, a rank SIGKILLed at
a random step, ``resume="allow"`` on every rank -> the same run, bit-identical weights, optimizer
state and logged metrics (every rank's) versus a job that was never interrupted."""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch

from runpoint.store import RunQuery, RunStatus
from runpoint.store.sqlite import SQLiteStore

from .multirank import RankJob, launch

JOB = Path(__file__).parent

TRAIN = """
import os, signal, sys
sys.path.insert(0, {job!r})
import torch
import runpoint as rp
from runpoint.checkpoint import ResumableSampler
from sharded_job import DATA, build

rank = dist.get_rank()
with rp.init(project={project!r}, config={{"lr": 0.05}}, resume="allow", log_ranks="all", system_metrics=False) as run:
    model, wrapped = build("ddp")
    optimizer = torch.optim.AdamW(wrapped.parameters(), lr=0.05)
    sampler = ResumableSampler(len(DATA), seed=3)
    torch.manual_seed(100 + rank)
    state = {{"model": wrapped, "optimizer": optimizer, "sampler": sampler}}
    ckpt = rp.CheckpointManager(run, keep_last=2)
    start = ckpt.restore(state) or 0
    print("start", run.id, start, run.resume_count, flush=True)
    batches = iter(sampler)
    for step in range(start, 16):
        if step == {die_at} and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        try:
            index = next(batches)
        except StopIteration:
            batches = iter(sampler)
            index = next(batches)
        loss = wrapped(DATA[[index]] + 0.01 * torch.randn(1, 8)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log({{"loss": loss.item()}}, step=step)
        if (step + 1) % 4 == 0:
            ckpt.save(step, state)
    torch.save({{"model": model.state_dict(), "optimizer": optimizer.state_dict()}}, f"final-{{run.project}}-{{rank}}.pt")
"""


def _job(tmp_path: Path, root: Path, project: str, die_at: int, name: str) -> RankJob:
    return launch(TRAIN.format(job=str(JOB), project=project, die_at=die_at), 2, tmp_path, root, name=name)


def _metrics(store: SQLiteStore, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
    return {key: (store.read_metric(run_id, key).steps.tolist(), store.read_metric(run_id, key).values.tolist())
            for key in ("loss", "loss@rank1")}


def test_a_rank_killed_at_a_random_step_resumes_into_the_same_run_bit_for_bit(tmp_path: Path, root: Path) -> None:
    die_at = random.Random().randrange(5, 15)
    reference = _job(tmp_path, root, "reference", -1, "reference")
    killed = _job(tmp_path, root, "resumed", die_at, "killed")
    assert reference.wait(120) == [0, 0], reference.logs()
    while killed.alive(1):
        time.sleep(0.05)
    time.sleep(0.3)
    killed.kill(0)  # stuck in DDP's all-reduce with the dead rank, as torchrun would find it
    killed.wait(60)
    resumed = _job(tmp_path, root, "resumed", -1, "resumed")
    assert resumed.wait(120) == [0, 0], resumed.logs()

    store = SQLiteStore(root / "runpoint.db")
    (first,) = store.list_runs(RunQuery(project="reference"))
    (second,) = store.list_runs(RunQuery(project="resumed"))
    assert (second.status, second.resume_count) == (RunStatus.COMPLETED, 1), second
    restored_from = (die_at // 4) * 4  # the step after the last checkpoint before the kill
    assert all(f"start {second.id} {restored_from} 1" in resumed.log(rank) for rank in (0, 1)), resumed.logs()
    assert _metrics(store, second.id) == _metrics(store, first.id), f"killed at step {die_at}"
    assert _metrics(store, first.id)["loss@rank1"][0] == list(range(16))
    for rank in (0, 1):
        want = torch.load(tmp_path / f"final-reference-{rank}.pt")
        got = torch.load(tmp_path / f"final-resumed-{rank}.pt")
        for part in ("model", "optimizer"):
            assert repr(want[part]) == repr(got[part]), (part, rank, die_at)  # every tensor and value, printed in full
        assert all(torch.equal(a, b) for a, b in zip(want["model"].values(), got["model"].values()))
    store.close()
