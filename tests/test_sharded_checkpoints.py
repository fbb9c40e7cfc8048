"""Sharded checkpoints of multi-rank jobs (DDP on 2 gloo ranks, FSDP2 on 4), on real processes.

Each test runs a few short jobs of :mod:`tests.sharded_job` and reads back what they left:
files on disk, tensors compared bit for bit with an uninterrupted job, which process wrote
the pointers.
"""

from __future__ import annotations

import json
import os
import pickle
import time
from pathlib import Path

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint
from runpoint.errors import CheckpointCorruptError

from .multirank import RankJob, launch

JOB = Path(__file__).parent


def run(code: str, world: int, tmp_path: Path, root: Path, name: str, **env: str) -> RankJob:
    body = f"import sys; sys.path.insert(0, {str(JOB)!r})\nfrom sharded_job import *\n" + code
    return launch(body, world, tmp_path, root, name=name, env=env or None)


def finish(job: RankJob, expected: list[int], timeout: float = 90) -> None:
    assert job.wait(timeout) == expected, job.logs()


def kill_survivors(job: RankJob, dead: int, timeout: float = 60) -> None:
    """Wait for rank ``dead`` to die, then SIGKILL the others (stuck in a collective with it)."""
    deadline = time.monotonic() + timeout
    while job.alive(dead):
        assert time.monotonic() < deadline, job.logs()
        time.sleep(0.05)
    time.sleep(0.5)
    for rank in range(len(job.pids)):
        if rank != dead and job.alive(rank):
            job.kill(rank)
    job.wait(timeout)


def assert_same(left: object, right: object, where: str = "") -> None:
    if isinstance(left, torch.Tensor):
        assert isinstance(right, torch.Tensor) and torch.equal(left, right), where
    elif isinstance(left, dict):
        assert isinstance(right, dict) and set(left) == set(right), (where, sorted(map(str, left)), sorted(map(str, right)))
        for key in left:
            assert_same(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, (list, tuple)):
        assert len(left) == len(right), where  # type: ignore[arg-type]
        for index, (a, b) in enumerate(zip(left, right)):  # type: ignore[call-overload]
            assert_same(a, b, f"{where}[{index}]")
    else:
        assert left == right, (where, left, right)


def test_ddp_resume_after_a_kill_is_exact_and_only_rank_zero_moves_pointers(tmp_path, root):
    (tmp_path / "ref").mkdir()
    finish(run('train("ddp", "unused", total=8, out="ref")', 2, tmp_path, root, "reference"), [0, 0])
    job = run('train("ddp", "ckpts", total=8, every=2, die_at=5)', 2, tmp_path, root, "killed")
    kill_survivors(job, dead=1)
    assert (tmp_path / "ckpts" / "latest").read_text().strip() == "step-000003"
    manifest = json.loads((tmp_path / "ckpts" / "step-000003" / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["sharded"] == {"world_size": 2, "keys": ["model", "optimizer"]}
    on_disk = {p.relative_to(tmp_path / "ckpts" / "step-000003").as_posix()
               for p in (tmp_path / "ckpts" / "step-000003").rglob("*") if p.is_file()}
    assert on_disk == set(manifest["files"]) | {"manifest.json"}
    assert {"dcp/.metadata", "ranks/rank-00000/state.msgpack", "ranks/rank-00001/state.msgpack"} <= on_disk

    resumed = run('record_pointer_writers("pointers.log")\ntrain("ddp", "ckpts", total=8, every=2)', 2, tmp_path,
                  root, "resumed")
    finish(resumed, [0, 0])
    assert "start 4" in resumed.log(0) and "start 4" in resumed.log(1)
    assert set((tmp_path / "pointers.log").read_text().split()) == {"0"}
    assert sorted(p.name for p in (tmp_path / "ckpts").glob("step-*")) == ["step-000005", "step-000007"]  # keep_last=2
    for rank in (0, 1):
        assert_same(torch.load(tmp_path / f"final-rank{rank}.pt"), torch.load(tmp_path / "ref" / f"final-rank{rank}.pt"))
    assert all(result.ok for result in verify_checkpoint(tmp_path / "ckpts"))


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_fsdp2_resume_is_exact_and_a_checkpoint_reshards_to_2_ranks_and_one_process(tmp_path, root):
    (tmp_path / "ref").mkdir()
    finish(run('train("fsdp", "unused", total=8, out="ref")', 4, tmp_path, root, "reference"), [0, 0, 0, 0])
    job = run('train("fsdp", "ckpts", total=8, every=2, die_at=5)', 4, tmp_path, root, "killed")
    kill_survivors(job, dead=1)
    resumed = run('train("fsdp", "ckpts", total=8, every=2)', 4, tmp_path, root, "resumed")
    finish(resumed, [0, 0, 0, 0])
    assert "start 4" in resumed.log(3)
    reference = torch.load(tmp_path / "ref" / "final-rank0.pt")
    assert_same(torch.load(tmp_path / "final-rank0.pt"), reference)
    files = json.loads((tmp_path / "ckpts" / "step-000007" / "manifest.json").read_text())["files"]
    assert {f"dcp/__{rank}_0.distcp" for rank in range(4)} <= set(files)  # every rank wrote its shards

    (tmp_path / "two").mkdir()
    two = run('restore_only("fsdp", "ckpts", out="two")', 2, tmp_path, root, "two")
    finish(two, [0, 0])
    assert "restored 8 {'rank': 0}" in two.log(0) and "restored 8 {'rank': 1}" in two.log(1), two.logs()
    assert_same(torch.load(tmp_path / "two" / "restored.pt"), reference)

    # one plain process: restore into a plain model, load_checkpoint and export give the same full tensors
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05)
    state = {"model": model, "optimizer": optimizer, "sampler": rp.checkpoint.ResumableSampler(64, seed=3), "extra": {}}
    ckpt = rp.CheckpointManager(tmp_path / "ckpts")
    assert ckpt.restore(state) == 8 and state["extra"] == {"rank": 0}
    assert_same(model.state_dict(), reference["model"])
    loaded = rp.load_checkpoint(tmp_path / "ckpts")
    assert_same(loaded["model"], reference["model"])
    names = list(reference["model"])
    assert_same(loaded["optimizer"]["state"], {names.index(k): v for k, v in reference["optimizer"]["state"].items()})
    fresh = torch.optim.AdamW(torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                                  torch.nn.Linear(16, 4)).parameters(), lr=0.05)
    fresh.load_state_dict(loaded["optimizer"])  # the shape Optimizer.state_dict() has
    from safetensors.torch import load_file

    assert_same(load_file(ckpt.export(tmp_path / "model.safetensors", which="latest")), reference["model"])


def test_a_rank_killed_in_a_save_leaves_the_previous_checkpoint_and_crafted_metadata_is_refused(tmp_path, root):
    finish(run('train("ddp", "ckpts", total=2, every=2)', 2, tmp_path, root, "first"), [0, 0])
    job = run('train("ddp", "ckpts", total=4, every=2)', 2, tmp_path, root, "dies", RUNPOINT_TEST_DIE_IN_SAVE="1")
    kill_survivors(job, dead=1)
    assert "saved 3" not in job.log(0)
    directory = tmp_path / "ckpts"
    assert sorted(p.name for p in directory.glob("step-*")) == ["step-000001"]
    assert (directory / "latest").read_text().strip() == "step-000001"
    assert "Traceback" in job.log(0)  # rank 0 heard of it in a collective: it removed its staging directory
    ckpt = rp.CheckpointManager(directory)  # (or, killed first, left it for this start to tidy)
    assert not any(p.name.startswith(".tmp-") for p in directory.iterdir())
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    state = {"model": model, "optimizer": torch.optim.AdamW(model.parameters()), "sampler": rp.checkpoint.ResumableSampler(64),
             "extra": {}}
    assert ckpt.restore(state) == 2 and ckpt.restored_step == 1

    # a crafted .metadata whose __reduce__ would run code, with the manifest's hash updated to match
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    crafted = directory / "step-000009"
    import shutil

    shutil.copytree(directory / "step-000001", crafted)
    payload = pickle.dumps(Exploit())
    (crafted / "dcp" / ".metadata").write_bytes(payload)
    import xxhash

    manifest = json.loads((crafted / "manifest.json").read_text())
    manifest["step"] = 9
    manifest["files"]["dcp/.metadata"] = {"bytes": len(payload), "hash": xxhash.xxh3_128_hexdigest(payload)}
    (crafted / "manifest.json").write_text(json.dumps(manifest))
    assert all(result.ok for result in verify_checkpoint(crafted))  # the hashes match: only the content is evil
    with pytest.raises(CheckpointCorruptError, match="posix.system is not part of a checkpoint's metadata"):
        rp.load_checkpoint(crafted)
    with pytest.raises(CheckpointCorruptError, match="not part of a checkpoint's metadata"):
        rp.CheckpointManager(directory).restore(state, which=9)
    assert not marker.exists()


def test_ranks_that_disagree_or_fail_in_the_background_raise_on_every_rank_and_rank_zero_alone_does_not_hang(
        tmp_path, root):
    job = run('''
import runpoint as rp, torch
from runpoint.checkpoint import LocalProcess, SafetensorsIO
from runpoint.errors import CheckpointError
rank = dist.get_rank()
model = torch.nn.Linear(2, 2)
ckpt = rp.CheckpointManager("ckpts")
for what, step, state in [("step", rank, {"model": model}), ("keys", 0, {"model": model, f"k{rank}": 1}),
                          ("value", 0, {"model": model, "bad": object() if rank == 1 else 1})]:
    try:
        ckpt.save(step, state)
    except CheckpointError as exc:
        print(what, "->", exc, flush=True)
try:
    ckpt.save_on_preemption(lambda: None)
except CheckpointError as exc:
    print("immediate ->", exc, flush=True)
print("latest", ckpt.latest, flush=True)

# async: rank 1's write fails in the background; the next save raises on both ranks
background = rp.CheckpointManager("async", async_save=True)
original = SafetensorsIO.save
def failing(self, *args, **kwargs):
    raise OSError("no space left (test)")
if rank == 1:
    SafetensorsIO.save = failing
print("returned", background.save(0, {"model": model}), flush=True)
try:
    background.save(1, {"model": model})
except CheckpointError as exc:
    print("background ->", exc, flush=True)
SafetensorsIO.save = original
with torch.no_grad():
    model.weight.fill_(2.0)
background.save(2, {"model": model})
model.weight.data.fill_(3.0)  # changed while the save is in flight: the staged copy is what is written
print("waited", background.wait().step, flush=True)

# rank 0 alone (the DDP habit): a clear error after the arrival timeout instead of a hang
if rank == 0:
    for what in ("save", "restore"):
        alone = rp.CheckpointManager(f"alone-{what}")
        try:
            alone.save(0, {"model": model}) if what == "save" else alone.restore({"model": model})
        except CheckpointError as exc:
            print(f"alone {what} ->", exc, flush=True)
    print("local", rp.CheckpointManager("local", process=LocalProcess()).save(0, {"model": model}).step, flush=True)
dist.barrier()
''', 2, tmp_path, root, "disagree", RUNPOINT_CHECKPOINT_ARRIVAL_TIMEOUT="1")
    finish(job, [0, 0])
    for rank in (0, 1):
        log = job.log(rank)
        assert "step -> the ranks disagree on the step to save (rank 0: 0, rank 1: 1); nothing was saved" in log, log
        assert "keys -> the ranks disagree on the state's keys (rank 0: ['k0', 'model'], rank 1: ['k1', 'model'])" in log
        assert "value -> could not save step 0; nothing was saved: rank 1: CheckpointError: cannot save state['bad']" in log
        assert "immediate -> save_on_preemption(get_state) saves at once" in log
        assert "latest None" in log
        assert "returned None" in log
        assert "background -> could not save step 0; nothing was saved: rank 1: OSError: no space left (test)" in log, log
        assert "waited 2" in log
    assert not list((tmp_path / "ckpts").glob("step-*"))
    assert [p.name for p in (tmp_path / "async").glob("step-*")] == ["step-000002"]
    model = torch.nn.Linear(2, 2)
    assert rp.CheckpointManager(tmp_path / "async").restore({"model": model}) == 3
    assert torch.equal(model.weight, torch.full((2, 2), 2.0))
    log = job.log(0)
    for what in ("save", "restore"):
        assert (f"alone {what} -> rank 0 waited 1 s for rank(s) 1 to call {what}() too: in a multi-rank job every rank "
                f"calls {what}() (the checkpoint is sharded); to save from rank 0 alone, pass process=LocalProcess()") in log
    assert "local 0" in log
    assert not list((tmp_path / "alone-save").glob("step-*"))


def test_multi_rank_environment_without_a_process_group_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(rp.errors.CheckpointError, match="torch.distributed has no process group"):
        rp.CheckpointManager(tmp_path / "ckpts")
    from runpoint.checkpoint import LocalProcess

    assert rp.CheckpointManager(tmp_path / "ckpts", process=LocalProcess()).process.world_size == 1


def test_sharded_manifests_keep_their_files_inside_and_single_process_ones_are_unchanged():
    from runpoint.artifacts.manifest import FileEntry, Manifest

    entry = FileEntry(bytes=1, hash="00")
    single = Manifest(step=1, sequence=1, created_at=0.0, files={"state.msgpack": entry})
    assert '"sharded"' not in single.to_json() and '"format_version": 1' in single.to_json()
    sharded = Manifest(step=1, sequence=1, created_at=0.0, files={"dcp/.metadata": entry}, world_size=2,
                       sharded=("model",))
    assert Manifest.from_json(sharded.to_json()) == sharded
    for name in ("dcp/../../x", "/etc/passwd", "ranks/.hidden", "a/b/c/d"):
        crafted = sharded.to_json().replace('"dcp/.metadata"', json.dumps(name))
        with pytest.raises(CheckpointCorruptError, match="leaves the checkpoint directory"):
            Manifest.from_json(crafted)


def test_sigterm_on_one_rank_saves_the_same_step_on_every_rank_async_and_the_resume_is_exact(tmp_path, root):
    (tmp_path / "ref").mkdir()
    finish(run('train("fsdp", "unused", total=8, out="ref")', 2, tmp_path, root, "reference"), [0, 0])
    job = run('train("fsdp", "ckpts", total=8, every=2, async_save=True, preempt_at=4)', 2, tmp_path, root,
              "preempted")
    finish(job, [143, 143])  # SystemExit(128 + SIGTERM) on both: rank 0 never got the signal
    for rank in (0, 1):
        assert "signal 15: saved step 4; exiting" in job.log(rank) and "saved 5" not in job.log(rank), job.logs()
    directory = tmp_path / "ckpts"
    assert sorted(p.name for p in directory.glob("step-*")) == ["step-000003", "step-000004"]
    assert (directory / "latest").read_text().strip() == "step-000004"
    files = json.loads((directory / "step-000004" / "manifest.json").read_text())["files"]
    assert {"dcp/__0_0.distcp", "dcp/__1_0.distcp", "ranks/rank-00001/state.msgpack"} <= set(files)
    assert all(result.ok for result in verify_checkpoint(directory))

    resumed = run('train("fsdp", "ckpts", total=8, every=2, async_save=True)', 2, tmp_path, root, "resumed")
    finish(resumed, [0, 0])
    assert "start 5" in resumed.log(0) and "start 5" in resumed.log(1)
    assert_same(torch.load(tmp_path / "final-rank0.pt"), torch.load(tmp_path / "ref" / "final-rank0.pt"))
    assert (directory / "latest").read_text().strip() == "step-000007"  # the async saves committed at close()


def test_a_missing_shard_falls_back_for_latest_and_raises_for_its_step_on_every_rank(tmp_path, root):
    finish(run('train("fsdp", "ckpts", total=4, every=2)', 2, tmp_path, root, "train"), [0, 0])
    (tmp_path / "ckpts" / "step-000003" / "dcp" / "__1_0.distcp").unlink()
    job = run('''
from runpoint.errors import RunpointError
model, wrapped = build("fsdp")
state = {"model": wrapped, "optimizer": torch.optim.AdamW(wrapped.parameters(), lr=0.05),
         "sampler": ResumableSampler(len(DATA), seed=3), "extra": {}}
ckpt = rp.CheckpointManager("ckpts")
print("latest ->", ckpt.restore(state), flush=True)
try:
    ckpt.restore(state, which=3)
except RunpointError as exc:
    print("which ->", type(exc).__name__, exc, flush=True)
''', 2, tmp_path, root, "restore")
    finish(job, [0, 0])
    for rank in (0, 1):
        log = job.log(rank)
        assert "dcp/__1_0.distcp" in log.split("latest ->")[0] and "falling back to an older checkpoint" in log, log
        assert "latest -> 2" in log
        which = log.split("which ->", 1)[1]
        assert "CheckpointCorruptError" in which and "dcp/__1_0.distcp" in which, log


def test_a_sampler_position_that_another_world_size_cannot_share_evenly_is_refused(tmp_path):
    from runpoint.checkpoint import ResumableSampler

    sampler = ResumableSampler(64, seed=3, num_replicas=2, rank=0)
    batches = iter(sampler)
    for _ in range(3):
        next(batches)  # 2 ranks x 3 samples = 6 consumed: 4 ranks cannot split that evenly
    rp.CheckpointManager(tmp_path / "ckpts").save(0, {"sampler": sampler})
    with pytest.raises(rp.errors.RunpointError, match="saved by 2 ranks after 6 samples of the epoch, which 4 ranks "
                                                      "cannot share evenly"):
        rp.CheckpointManager(tmp_path / "ckpts").restore({"sampler": ResumableSampler(64, seed=3, num_replicas=4, rank=0)})
    three = ResumableSampler(64, seed=3, num_replicas=3, rank=1)
    assert rp.CheckpointManager(tmp_path / "ckpts").restore({"sampler": three}) == 1 and three.position == 2


def test_check_every_must_be_a_positive_int(tmp_path):
    ckpt = rp.CheckpointManager(tmp_path / "ckpts")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(rp.errors.InvalidArgumentError, match="check_every"):
            ckpt.save_on_preemption(check_every=bad)


@pytest.mark.slow  # 8 + 3 ranks on 2 cores: ~30 s
def test_an_8_rank_fsdp2_checkpoint_restores_on_3_ranks_with_the_same_full_tensors(tmp_path, root):
    (tmp_path / "eight").mkdir()
    (tmp_path / "three").mkdir()
    finish(run('train("fsdp", "ckpts", total=4, every=2, out="eight")', 8, tmp_path, root, "eight"), [0] * 8, 240)
    files = json.loads((tmp_path / "ckpts" / "step-000003" / "manifest.json").read_text())["files"]
    assert {f"ranks/rank-{rank:05d}/state.msgpack" for rank in range(8)} <= set(files)
    three = run('restore_only("fsdp", "ckpts", out="three")', 3, tmp_path, root, "three")
    finish(three, [0, 0, 0], 240)
    assert all(f"restored 4 {{'rank': {rank}}}" in three.log(rank) for rank in range(3)), three.logs()
    final = torch.load(tmp_path / "eight" / "final-rank0.pt")
    assert_same(torch.load(tmp_path / "three" / "restored.pt"), final)
    assert_same(rp.load_checkpoint(tmp_path / "ckpts")["model"], final["model"])
