"""`runpoint ckpt ls|verify|gc|export` and `runpoint demo --resume`, run as a user would."""

from __future__ import annotations

import json
import os
import random
import signal
import time

import pytest
import safetensors.torch
import torch

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from ._zygote import shared_torch_zygote
from .conftest import cli


def _run_with_checkpoints(root) -> None:
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, keep_last=2, monitor="val/loss")
        model = torch.nn.Linear(4, 2)
        for step, loss in ((10, 0.5), (20, 0.3), (30, 0.4), (40, 0.6)):
            ckpt.save(step, {"model": model, "step": step}, metrics={"val/loss": loss})


def test_ls_shows_the_runs_checkpoints_with_latest_and_best(root) -> None:
    _run_with_checkpoints(root)
    table = cli(root, "ckpt", "ls", "r1")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "run r1:" in lines[0] and lines[0].endswith("p/r1/checkpoints")
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"20", "30", "40"}
    assert "best" in rows["20"] and "latest" in rows["40"] and "val/loss=0.4" in rows["30"]
    everything = json.loads(cli(root, "ckpt", "ls", "r1", "--all", "--json").stdout)
    assert [(c["step"], c["deleted"], c["best"], c["latest"]) for c in everything["checkpoints"]] == [
        (10, True, False, False), (20, False, True, False), (30, False, False, False), (40, False, False, True)]
    by_path = json.loads(cli(None, "ckpt", "ls", str(root / "p" / "r1" / "checkpoints"), "--json").stdout)
    assert [c["step"] for c in by_path["checkpoints"]] == [20, 30, 40]


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_gc_prunes_by_policy_but_never_the_latest_or_best(root) -> None:
    _run_with_checkpoints(root)
    usage = cli(root, "ckpt", "gc", "r1")
    assert usage.returncode == 2 and "--keep-last" in usage.stderr
    dry = cli(root, "ckpt", "gc", "r1", "--keep-last", "1", "--dry-run")
    assert dry.returncode == 0 and "step       30" in dry.stdout and "20" not in dry.stdout
    assert sorted(os.listdir(root / "p" / "r1" / "checkpoints")) == [
        "best", "latest", "step-000020", "step-000030", "step-000040"]
    done = cli(root, "ckpt", "gc", "r1", "--keep-last", "1", "--yes")
    assert done.returncode == 0 and "deleted 1 checkpoint(s)" in done.stderr, done.stderr
    assert sorted(os.listdir(root / "p" / "r1" / "checkpoints")) == ["best", "latest", "step-000020", "step-000040"]
    listed = json.loads(cli(root, "ckpt", "ls", "r1", "--all", "--json").stdout)["checkpoints"]
    assert [c["step"] for c in listed if not c["deleted"]] == [20, 40]
    asked = cli(root, "ckpt", "gc", "r1", "--keep-last", "1", "--keep-best", "1")
    assert asked.returncode == 2 and "monitor" in asked.stderr


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_gc_refuses_a_live_run_and_bad_targets_fail_in_one_line(root) -> None:
    with rp.init(project="p", id="live", root=root, console=False) as run:
        rp.CheckpointManager(run).save(1, {"x": 1})
        refused = cli(root, "ckpt", "gc", "live", "--keep-last", "1", "--yes")
        assert refused.returncode == 1 and "still running" in refused.stderr
    missing = cli(root, "ckpt", "ls", "nope")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1 and "no run matches 'nope'" in missing.stderr
    empty = cli(None, "ckpt", "verify", str(root))
    assert empty.returncode == 1 and "no checkpoints" in empty.stderr
    for command in ("ls", "verify", "gc", "export"):
        helped = cli(None, "ckpt", command, "--help")
        assert helped.returncode == 0 and "Usage" in helped.stdout


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_export_writes_weights_that_load_into_the_model(root, tmp_path) -> None:
    _run_with_checkpoints(root)
    out = tmp_path / "deploy" / "model.safetensors"
    out.parent.mkdir()
    done = cli(root, "ckpt", "export", "r1", str(out))
    assert done.returncode == 0, done.stderr
    weights = safetensors.torch.load_file(out)
    assert set(weights) == {"weight", "bias"}
    best = rp.load_checkpoint(root / "p" / "r1" / "checkpoints", which="best")
    assert best["step"] == 20 and torch.equal(weights["weight"], best["model"]["weight"])
    wrong = cli(root, "ckpt", "export", "r1", str(out), "--which", "soon")
    assert wrong.returncode == 2 and "--which" in wrong.stderr


_DEMO_CALL = "from runpoint.cli.main import app\napp({args!r}, standalone_mode=False)\n"


def _interrupt_a_demo_and_resume(tmp_path, epochs: int, when: str, signum: int) -> tuple[str, str]:
    """Run the demo whole ("full") and again ("victim") until ``when`` is printed, send it ``signum``,
    resume it with ``--resume latest``; return the victim's and the resumed process's output."""
    zygote = shared_torch_zygote()
    root = tmp_path / "runpoint"

    def demo(log_name: str, *args: str) -> int:
        return zygote.spawn(_DEMO_CALL.format(args=["demo", *args, "--root", str(root)]), tmp_path / log_name)

    full = demo("full.log", "-e", str(epochs), "--name", "full")
    assert zygote.wait(full) == 0, (tmp_path / "full.log").read_text()
    victim_log = tmp_path / "victim.log"
    victim = demo("victim.log", "-e", str(epochs), "--name", "victim")
    deadline = time.monotonic() + 60
    while not victim_log.exists() or when not in victim_log.read_text():
        assert time.monotonic() < deadline
        time.sleep(0.005)
    if signum == signal.SIGTERM:
        time.sleep(random.uniform(0.0, 0.3))  # somewhere in the next few epochs, mid-epoch most likely
    os.kill(victim, signum)
    status = zygote.wait(victim)
    assert status == (-signal.SIGKILL if signum == signal.SIGKILL else 128 + signum), victim_log.read_text()
    resumed = demo("resumed.log", "--resume", "latest")
    assert zygote.wait(resumed) == 0, (tmp_path / "resumed.log").read_text()

    store = SQLiteStore(root / "runpoint.db")
    try:
        runs = {run.name: run for run in store.list_runs()}
        assert runs["victim"].status is rp.RunStatus.COMPLETED and runs["victim"].resume_count == 1
        for key in ("train/loss", "train/lr", "val/loss", "val/acc"):
            a, b = store.read_metric(runs["full"].id, key), store.read_metric(runs["victim"].id, key)
            assert a.steps == b.steps and a.values.tobytes() == b.values.tobytes(), key
    finally:
        store.close()
    return victim_log.read_text(), (tmp_path / "resumed.log").read_text()


@pytest.mark.slow  # ~12 s; test_exact_resume covers SIGKILL-and-resume in the default run
def test_a_killed_demo_resumes_exactly(tmp_path) -> None:
    _, resumed = _interrupt_a_demo_and_resume(tmp_path, epochs=3, when="epoch  2/3", signum=signal.SIGKILL)
    assert "resumed from the checkpoint of step 45 (epoch 3/3)" in resumed


@pytest.mark.slow  # ~12 s; test_exact_resume and test_preemption cover SIGTERM at a step boundary in the default run
def test_a_demo_stopped_with_sigterm_mid_epoch_resumes_exactly(tmp_path) -> None:
    victim, resumed = _interrupt_a_demo_and_resume(tmp_path, epochs=20, when="epoch  1/20", signum=signal.SIGTERM)
    assert "saving at the next step boundary" in victim
    assert "resumed from the checkpoint of step" in resumed


def test_gc_deletes_only_the_checkpoints_it_listed_and_the_user_confirmed(tmp_path) -> None:
    import subprocess
    import sys

    from .conftest import wait_for_line

    directory = tmp_path / "ckpts"
    ckpt = rp.CheckpointManager(directory, rng=False)
    for step in (1, 2, 3):
        ckpt.save(step, {"step": step})
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    env.pop("RUNPOINT_ROOT", None)
    gc = subprocess.Popen([sys.executable, "-m", "runpoint", "ckpt", "gc", str(directory), "--keep-last", "2"],
                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "step        1" in wait_for_line(gc, "  delete  step")
        # while the user reads the list, training saves two more: steps 2 and 3 fall out of keep-last
        for step in (4, 5):
            ckpt.save(step, {"step": step})
        out, err = gc.communicate("y\n", timeout=60)
    finally:
        if gc.poll() is None:
            gc.kill()
            gc.wait()
    assert gc.returncode == 0, err
    assert "deleted 1 checkpoint(s)" in err and "kept 2 more that the policy drops now" in err, err
    assert sorted(p.name for p in directory.glob("step-*")) == ["step-000002", "step-000003", "step-000004", "step-000005"]
    again = cli(None, "ckpt", "gc", str(directory), "--keep-last", "2", "--yes")
    assert again.returncode == 0 and "deleted 2 checkpoint(s)" in again.stderr, again.stderr
    assert sorted(p.name for p in directory.glob("step-*")) == ["step-000004", "step-000005"]


def test_gc_json_prints_only_json_on_stdout(tmp_path) -> None:
    directory = tmp_path / "ckpts"
    ckpt = rp.CheckpointManager(directory, rng=False)
    for step in (1, 2, 3):
        ckpt.save(step, {"step": step})
    asked = cli(None, "ckpt", "gc", str(directory), "--keep-last", "2", "--json", input="n\n")
    assert asked.returncode == 1 and asked.stdout.strip() == "" and "Delete 1 checkpoint(s)?" in asked.stderr  # (click: input(" "))
    done = cli(None, "ckpt", "gc", str(directory), "--keep-last", "1", "--yes", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deleted"] == [1, 2] and "delete  step" in done.stderr
    assert sorted(p.name for p in directory.glob("step-*")) == ["step-000003"]
