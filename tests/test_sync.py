"""sync_run: a local root's run brought to another store, whole, once, and again after a resume.

The target here is a real PostgreSQL store (the server's own backend) and a directory
for files; the same function runs behind the HTTP client in the server tests.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store import RunStatus, open_store
from runpoint.sync import SyncState, SyncTarget, sync_run
from runpoint.sync.push import sequence_of


class DirectoryFiles:
    """A FileTarget that copies into ``<dir>/<run id>/``: where the server's object store would hold them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.uploads: list[str] = []

    def upload(self, run_id: str, rel_path: str, local_path, *, xxh3=None) -> int:
        target = self.directory / run_id / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(local_path, target)
        self.uploads.append(rel_path)
        return target.stat().st_size

    def upload_checkpoint(self, run_id: str, local_dir, rel_dir: str) -> int:
        local_dir = Path(local_dir)
        names = sorted(p.relative_to(local_dir).as_posix() for p in local_dir.rglob("*") if p.is_file())
        return sum(self.upload(run_id, f"{rel_dir}/{name}", local_dir / name)
                   for name in sorted(names, key=lambda n: n == "manifest.json"))  # the manifest last

    def delete_prefix(self, run_id: str, prefix: str) -> int:
        shutil.rmtree(self.directory / run_id / prefix, ignore_errors=True)
        return 1

    def list(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        base = self.directory / run_id
        found = [p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()]
        return [(p, (base / p).stat().st_size) for p in sorted(found) if p.startswith(prefix)]

    def download(self, run_id: str, rel_path: str, dest) -> Path:
        shutil.copyfile(self.directory / run_id / rel_path, dest)
        return Path(dest)


def _record(root: Path, steps: int, *, resume: str | None = None, summary: float = 1.0) -> str:
    with rp.init(project="p", root=root, config={"lr": 0.1, "api_key": "hunter2"}, resume=resume,
                 system_metrics=False) as run:
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1), "acc": step / 10}, step=step)
        run.summary["best"] = summary
        print("hello from the run")
        return run.id


def _same_metrics(a, b, run_id: str) -> None:
    assert a.metric_keys(run_id) == b.metric_keys(run_id)
    for key in a.metric_keys(run_id):
        assert a.read_metric(run_id, key) == b.read_metric(run_id, key), key


def test_a_run_arrives_whole_and_a_second_sync_stores_nothing_twice(tmp_path, postgres_url):
    root = tmp_path / "local"
    run_id = _record(root, 3000)
    source, remote = open_store(root), open_store(postgres_url)
    state, files = SyncState(root), DirectoryFiles(tmp_path / "files")
    target = SyncTarget(remote, files)

    first = sync_run(source, root, state, target, run_id)
    assert first.created and first.points == 6000 and first.complete
    _same_metrics(source, remote, run_id)
    got = remote.get_run(run_id)
    assert got.status is RunStatus.COMPLETED and got.ended_at == source.get_run(run_id).ended_at
    assert remote.get_params(run_id)["api_key"] != "hunter2"  # masked before it ever left the machine
    assert remote.get_summary(run_id) == {"best": 1.0}
    assert "hello from the run" in (tmp_path / "files" / run_id / "logs" / "console.log").read_text()

    again = sync_run(source, root, state, target, run_id)
    assert (again.points, again.files, again.created) == (0, 0, False) and again.complete
    _same_metrics(source, remote, run_id)


def test_a_resumed_run_with_a_cut_history_is_mirrored_exactly(tmp_path, postgres_url):
    root = tmp_path / "local"
    run_id = _record(root, 500)
    source, remote = open_store(root), open_store(postgres_url)
    state = SyncState(root)
    sync_run(source, root, state, SyncTarget(remote), run_id)
    # resume: the run drops what came after step 199 and logs a different tail
    with rp.init(project="p", root=root, resume=run_id, system_metrics=False) as run:
        run.rewind(199)
        for step in range(200, 260):
            run.log({"loss": -1.0}, step=step)
        run.summary["best"] = 2.0
    report = sync_run(source, root, state, SyncTarget(remote), run_id)
    assert report.complete
    _same_metrics(source, remote, run_id)
    assert remote.get_run(run_id).resume_count == 1 and remote.get_summary(run_id) == {"best": 2.0}


def test_a_batch_whose_reply_was_lost_is_stored_once(tmp_path, postgres_url):
    """The server stored a batch but the client never heard: the next sync asks the server's counts first."""
    root = tmp_path / "local"
    run_id = _record(root, 100)
    source, remote = open_store(root), open_store(postgres_url)
    state = SyncState(root)
    sync_run(source, root, state, SyncTarget(remote), run_id)
    # the same batch again (an HTTP retry of a lost reply) is skipped by its idempotency key
    from runpoint.store import WriteBatch

    series = source.read_metric(run_id, "loss")
    key = sequence_of(0, "metrics", [("acc", 0, 100), ("loss", 0, 100)])
    remote.write(run_id, WriteBatch(metrics={"loss": series, "acc": source.read_metric(run_id, "acc")}, sequence=key))
    assert len(remote.read_metric(run_id, "loss")) == 100


def test_one_syncer_per_run(tmp_path):
    state = SyncState(tmp_path)
    other = SyncState(tmp_path)
    import multiprocessing

    with state.lock("abc") as held:
        assert held
        ctx = multiprocessing.get_context("fork")
        result = ctx.Queue()

        def child() -> None:
            with other.lock("abc") as got:
                result.put(got)

        process = ctx.Process(target=child)
        process.start()
        assert result.get(timeout=30) is False
        process.join()
    with other.lock("abc") as held:
        assert held


def test_a_run_checkpointed_on_one_machine_resumes_exactly_on_another(tmp_path, postgres_url):
    """Machine A records and checkpoints, its run reaches the server; machine B's empty spool pulls it and resumes."""
    import torch

    from runpoint.sync.pull import pull_for_resume

    machine_a, machine_b = tmp_path / "a", tmp_path / "b"
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 3)
    with rp.init(project="p", root=machine_a, system_metrics=False) as run:
        ckpt = rp.CheckpointManager(run, keep_last=1)
        for step in range(12):
            run.log({"loss": float(step)}, step=step)
            if step in (4, 8):
                with torch.no_grad():
                    model.weight.add_(step)
                ckpt.save(step, {"model": model})
        run_id = run.id
    remote, files = open_store(postgres_url), DirectoryFiles(tmp_path / "server-files")
    report = sync_run(open_store(machine_a), machine_a, SyncState(machine_a), SyncTarget(remote, files), run_id)
    assert report.checkpoints == 1 and report.complete  # keep_last=1: step 4's was removed before the sync
    on_server = tmp_path / "server-files" / run_id / "checkpoints"
    assert sorted(p.name for p in on_server.iterdir()) == ["latest", "step-000008"]
    assert files.uploads[-2:] == ["checkpoints/step-000008/manifest.json", "checkpoints/latest"]  # manifest, then pointer

    spool_b = open_store(machine_b)
    assert pull_for_resume(SyncTarget(remote, files), machine_b, spool_b, project="p", resume="latest", run_id=None) == run_id
    restored = torch.nn.Linear(8, 3)
    with rp.init(project="p", root=machine_b, resume=run_id, system_metrics=False) as resumed:
        assert rp.CheckpointManager(resumed).restore({"model": restored}) == 9
        resumed.log({"loss": 90.0})
    assert torch.equal(restored.weight, model.weight) and torch.equal(restored.bias, model.bias)
    loss = spool_b.read_metric(run_id, "loss")
    assert loss.steps.tolist() == list(range(10)) and loss.values.tolist()[-1] == 90.0


def test_a_second_copy_of_a_run_never_replaces_what_the_server_holds(tmp_path, postgres_url):
    from runpoint.errors import RunpointError

    remote = open_store(postgres_url)
    for name, steps in (("a", 100), ("b", 50)):  # two roots recorded a run of the same id
        root = tmp_path / name
        with rp.init(project="p", id="shared", root=root, system_metrics=False, console=False) as run:
            for step in range(steps):
                run.log({"loss": float(step)}, step=step)
        if name == "a":
            sync_run(open_store(root), root, SyncState(root), SyncTarget(remote), "shared")
    with pytest.raises(RunpointError, match="another copy"):
        sync_run(open_store(root), root, SyncState(root), SyncTarget(remote), "shared")
    assert len(remote.read_metric("shared", "loss")) == 100


def test_a_pull_that_fails_halfway_leaves_no_half_run(tmp_path, postgres_url):
    from runpoint.errors import RunNotFoundError, RunpointError
    from runpoint.sync.pull import pull_for_resume

    source_root = tmp_path / "a"
    run_id = _record(source_root, 50)
    remote, files = open_store(postgres_url), DirectoryFiles(tmp_path / "server-files")
    sync_run(open_store(source_root), source_root, SyncState(source_root), SyncTarget(remote, files), run_id)

    class Unreachable(DirectoryFiles):
        def download(self, run_id, rel_path, dest):
            raise RunpointError("the object store went away")

    machine_b = tmp_path / "b"
    spool = open_store(machine_b)
    broken = SyncTarget(remote, Unreachable(tmp_path / "server-files"))
    assert pull_for_resume(broken, machine_b, spool, project="p", resume=run_id, run_id=None) is None  # warned
    with pytest.raises(RunNotFoundError):
        spool.get_run(run_id)
    assert not (machine_b / "p" / run_id).exists()
    assert pull_for_resume(SyncTarget(remote, files), machine_b, spool, project="p", resume=run_id, run_id=None) == run_id
    _same_metrics(spool, remote, run_id)


def test_a_spool_that_cannot_be_made_is_one_clear_error(tmp_path, monkeypatch):
    from runpoint.errors import RunpointError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RUNPOINT_SPOOL", str(blocker))
    with pytest.raises(RunpointError, match=r"spool .* set \$RUNPOINT_SPOOL"):
        rp.init(project="p", root="http://127.0.0.1:9")
    assert blocker.read_text() == "not a directory"
