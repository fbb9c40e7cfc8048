"""`ckpt gc` and `ckpt ls` against a registry that disagrees with the files (13.6, 13.10)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

import runpoint as rp
from runpoint.query import archive
from runpoint.store.sqlite import SQLiteStore

from ..conftest import cli, run_script

pytestmark = pytest.mark.timeout(120)


def _steps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("step-"))


def _moved(source_root: Path, run_id: str, target_root: Path, tmp_path: Path) -> None:
    """`runpoint export --archive` then `runpoint import` into another root, through the library."""
    store = SQLiteStore(source_root / "runpoint.db")
    path = archive.export_archive(store, store.get_run(run_id), tmp_path / "run.tar.gz")
    store.close()
    target = SQLiteStore(target_root / "runpoint.db")
    archive.import_archive(path, target)
    target.close()


def test_gc_of_an_imported_run_never_deletes_in_the_directory_its_old_root_recorded(tmp_path) -> None:
    source_root, target_root, elsewhere = tmp_path / "a", tmp_path / "b", tmp_path / "elsewhere"
    with rp.init(project="p", name="custom", root=source_root, console=False) as run:
        ckpt = rp.CheckpointManager(run, directory=elsewhere, rng=False)
        for step in (1, 2, 3):
            ckpt.save(step, {"w": torch.zeros(4)})
    _moved(source_root, run.id, target_root, tmp_path)
    refused = cli(target_root, "ckpt", "gc", run.id, "--keep-last", "1", "--yes")
    assert refused.returncode == 1 and "outside its directory" in refused.stderr and "Traceback" not in refused.stderr
    assert _steps(elsewhere) == ["step-000001", "step-000002", "step-000003"]
    by_path = cli(None, "ckpt", "gc", str(elsewhere), "--keep-last", "1", "--yes")  # named: the user's call
    assert by_path.returncode == 0, by_path.stderr
    assert _steps(elsewhere) == ["step-000003"]


def test_gc_of_an_imported_run_with_absolute_paths_prunes_its_own_copy(tmp_path) -> None:
    """Rows with absolute paths into the old root (older versions, symlinked roots) name the old files."""
    source_root, target_root = tmp_path / "a", tmp_path / "b"
    with rp.init(project="p", name="inside", root=source_root, console=False) as run:
        ckpt = rp.CheckpointManager(run, rng=False)
        for step in (1, 2, 3):
            ckpt.save(step, {"w": torch.zeros(4)})
    old = source_root / "p" / run.id / "checkpoints"
    with sqlite3.connect(source_root / "runpoint.db") as conn:
        conn.execute("UPDATE checkpoints SET path = ? || '/' || substr(path, 13) WHERE run_id = ?", (str(old), run.id))
    _moved(source_root, run.id, target_root, tmp_path)
    done = cli(target_root, "ckpt", "gc", run.id, "--keep-last", "1", "--yes")
    assert done.returncode == 0, done.stderr
    assert _steps(target_root / "p" / run.id / "checkpoints") == ["step-000003"]
    assert _steps(old) == ["step-000001", "step-000002", "step-000003"]


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_ls_after_a_sigkill_during_retention_shows_the_deleted_checkpoint_as_deleted(root, tmp_path) -> None:
    code = """
        import os, signal, torch, runpoint as rp
        from runpoint.checkpoint.io import SafetensorsIO

        class DieAfterRemove(SafetensorsIO):
            def remove(self, storage, directory):  # retention deleted the files; the registry is next
                super().remove(storage, directory)
                os.kill(os.getpid(), signal.SIGKILL)

        run = rp.init(project="p", id="k1", console=False, system_metrics=False)
        ckpt = rp.CheckpointManager(run, keep_last=2, io=DieAfterRemove(), rng=False)
        for step in (1, 2, 3):
            ckpt.save(step, {"w": torch.zeros(4)})
    """
    killed = run_script(tmp_path, root, code)
    assert killed.returncode == -9, killed.stderr
    assert _steps(root / "p" / "k1" / "checkpoints") == ["step-000002", "step-000003"]
    with sqlite3.connect(root / "runpoint.db") as conn:
        assert conn.execute("SELECT deleted_at FROM checkpoints WHERE run_id='k1' AND step=1").fetchone() == (None,)
    listed = json.loads(cli(root, "ckpt", "ls", "k1", "--json").stdout)
    assert [(c["step"], c["on_disk"]) for c in listed["checkpoints"]] == [(2, True), (3, True)]
    table = cli(root, "ckpt", "ls", "k1")
    assert table.returncode == 0 and "missing" not in table.stdout
    everything = json.loads(cli(root, "ckpt", "ls", "k1", "--all", "--json").stdout)
    assert [(c["step"], c["deleted"]) for c in everything["checkpoints"]] == [(1, True), (2, False), (3, False)]
    with sqlite3.connect(root / "runpoint.db") as conn:  # recorded, as the next start would have
        assert conn.execute("SELECT deleted_at FROM checkpoints WHERE run_id='k1' AND step=1").fetchone()[0] is not None


def test_ls_still_says_missing_when_a_checkpoint_directory_vanished_with_its_folder(root, tmp_path) -> None:
    with rp.init(project="p", id="m1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, rng=False)
        ckpt.save(1, {"w": torch.zeros(4)})
    import shutil

    shutil.rmtree(root / "p" / "m1" / "checkpoints")
    table = cli(root, "ckpt", "ls", "m1")
    assert table.returncode == 0 and "missing" in table.stdout
