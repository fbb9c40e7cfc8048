"""A run SIGKILLed at a random step and resumed from its checkpoint ends exactly like one never stopped.

Deterministic CPU training of an MLP with dropout on scikit-learn's digits: AdamW, a
step LR schedule, a shuffling ResumableSampler over a DataLoader, checkpoints every 10
steps. The final model and optimizer tensors are compared bit for bit, and every logged
metric step for step, with no duplicate or missing point.
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint.save_timing import SAVE_SECONDS
from runpoint.store.sqlite import SQLiteStore

from ._zygote import shared_torch_zygote

TOTAL_STEPS = 120
TRAIN = """
import time, torch, runpoint as rp
from sklearn.datasets import load_digits
from runpoint.checkpoint import ResumableSampler

digits = load_digits()
x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
y = torch.tensor(digits.target, dtype=torch.long)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(64, 10))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=40, gamma=0.5)
sampler = ResumableSampler(len(x), seed=1)
loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128, sampler=sampler,
                                     generator=sampler.generator)
progress = {{"step": 0}}
state = {{"model": model, "optimizer": opt, "scheduler": sched, "sampler": sampler, "progress": progress}}
with rp.init(project="exact", id={run_id!r}, resume={resume!r}, console=False, flush_interval=0.02) as run:
    ckpt = rp.CheckpointManager(run, keep_last=2, save_every_n_steps=10, async_save={async_save})
    if {preempt}:
        ckpt.save_on_preemption()  # SIGTERM: save at the next step boundary, then exit
    start = ckpt.restore(state)
    print("restored", ckpt.restored_step, flush=True)
    assert start is None or start == ckpt.restored_step + 1 == progress["step"], (start, progress)
    while progress["step"] < {total}:
        for xb, yb in loader:
            step = progress["step"]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            run.log({{"loss": loss.item(), "lr": sched.get_last_lr()[0], "noise": torch.rand(()).item()}}, step=step)
            progress["step"] += 1
            if ckpt.should_save(step):
                ckpt.save(step, state)
            print("step", step, flush=True)
            time.sleep({pause})
            if progress["step"] >= {total}:
                break
    ckpt.save({total} - 1, state)
"""


def _script(run_id: str, resume: str | None, async_save: bool, pause: float, preempt: bool = False) -> str:
    return TRAIN.format(run_id=None if resume else run_id, resume=resume, async_save=async_save,
                        total=TOTAL_STEPS, pause=pause, preempt=preempt)


def _last_step(log) -> int:
    if not log.exists():
        return -1
    text = log.read_text()
    complete = text[: text.rfind("\n") + 1]  # the child may be half way through writing a line
    lines = [line for line in complete.splitlines() if line.startswith("step ")]
    return int(lines[-1].split()[1]) if lines else -1


@pytest.fixture(scope="module")
def zygote():
    return shared_torch_zygote()


@pytest.fixture(scope="module")
def reference(zygote, tmp_path_factory):
    """The uninterrupted run: its final state and metrics."""
    root = tmp_path_factory.mktemp("reference") / "runpoint"
    log = root.parent / "log.txt"
    pid = zygote.spawn(_script("ref", None, False, 0.0), log, env={"RUNPOINT_ROOT": str(root)})
    assert zygote.wait(pid) == 0, log.read_text()
    return root, "ref"


def _final(root, run_id):
    state = rp.load_checkpoint(root / "exact" / run_id / "checkpoints")
    store = SQLiteStore(root / "runpoint.db")
    try:
        metrics = {key: store.read_metric(run_id, key) for key in store.metric_keys(run_id)}
        stats = store.metric_stats(run_id)
        status = store.get_run(run_id).status
    finally:
        store.close()
    return state, metrics, stats, status


def _tensors_identical(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.view(-1).view(torch.uint8).tolist() == b.view(-1).view(torch.uint8).tolist()  # bit for bit
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _tensors_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        for x, y in zip(a, b, strict=True):
            _tensors_identical(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_sigkill_at_a_random_step_then_resume_matches_the_uninterrupted_run(zygote, reference, tmp_path, async_save):
    root = tmp_path / "runpoint"
    env = {"RUNPOINT_ROOT": str(root)}
    kill_after = random.Random().randint(12, TOTAL_STEPS - 20)
    log = tmp_path / "attempt1.txt"
    pid = zygote.spawn(_script("victim", None, async_save, 0.004), log, env=env)
    deadline = time.monotonic() + 60
    while _last_step(log) < kill_after:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    assert zygote.wait(pid) == -signal.SIGKILL
    killed_at = _last_step(log)

    log2 = tmp_path / "attempt2.txt"
    pid = zygote.spawn(_script("victim", "victim", async_save, 0.0), log2, env=env)
    assert zygote.wait(pid) == 0, log2.read_text()
    restored = int(log2.read_text().split("restored ", 1)[1].split()[0])
    assert restored % 10 == 0 and restored <= killed_at, (restored, killed_at)

    _assert_matches(reference, root, "victim")


def _assert_matches(reference, root, run_id: str) -> None:
    ref_state, ref_metrics, ref_stats, _ = _final(*reference)
    state, metrics, stats, status = _final(root, run_id)
    assert status is rp.RunStatus.COMPLETED
    _tensors_identical(state["model"], ref_state["model"])
    _tensors_identical(state["optimizer"], ref_state["optimizer"])
    assert state["progress"] == ref_state["progress"] == {"step": TOTAL_STEPS}
    saves, ref_saves = metrics.pop(SAVE_SECONDS), ref_metrics.pop(SAVE_SECONDS)  # timings: never equal
    for series in (saves, ref_saves):  # one per checkpoint at most, none twice after the resume
        assert series.steps.tolist() == sorted(set(series.steps)) and len(series) > 0
    assert metrics.keys() == ref_metrics.keys() == {"loss", "lr", "noise"}
    for key in ref_metrics:
        assert metrics[key].steps.tolist() == list(range(TOTAL_STEPS)), key  # one line: no duplicates, no gaps
        assert metrics[key].values.tobytes() == ref_metrics[key].values.tobytes(), key
        assert stats[key].count == TOTAL_STEPS and stats[key].last == ref_stats[key].last


@pytest.mark.parametrize("async_save", [False, True], ids=["sync", "async"])
def test_sigterm_saves_at_the_next_step_boundary_and_the_resume_is_exact(zygote, reference, tmp_path, async_save):
    root = tmp_path / "runpoint"
    env = {"RUNPOINT_ROOT": str(root)}
    signal_after = random.Random().randint(12, TOTAL_STEPS - 20)
    log = tmp_path / "attempt1.txt"
    pid = zygote.spawn(_script("victim", None, async_save, 0.004, preempt=True), log, env=env)
    deadline = time.monotonic() + 60
    while _last_step(log) < signal_after:
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.005)
    os.kill(pid, signal.SIGTERM)
    assert zygote.wait(pid) == 128 + signal.SIGTERM, log.read_text()
    printed = _last_step(log)  # the save that ends the process comes before its step is printed
    store = SQLiteStore(root / "runpoint.db")
    try:
        assert store.get_run("victim").status is rp.RunStatus.KILLED
    finally:
        store.close()

    log2 = tmp_path / "attempt2.txt"
    pid = zygote.spawn(_script("victim", "victim", async_save, 0.0, preempt=True), log2, env=env)
    assert zygote.wait(pid) == 0, log2.read_text()
    restored = int(log2.read_text().split("restored ", 1)[1].split()[0])
    assert printed <= restored <= printed + 1, (printed, restored)  # not a multiple of 10: the signal's step
    _assert_matches(reference, root, "victim")
