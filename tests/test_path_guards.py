"""The two guards that keep stored names from reaching files outside their directory.

- The store writes a media file only under the run's ``media/``, whatever path a batch
  carries (``media.media_path`` makes safe paths; a batch from elsewhere, such as a
  future HTTP client, may not).
- A checkpoint manifest naming a file outside its directory is corrupt. On a local disk
  the reader also refuses such names (``open_regular``), so the remote case is the one
  only the manifest guard protects: on an fsspec URL the name would be read as is.

Each test fails when its guard is removed (checked by hand when they were written).
"""

from __future__ import annotations

import json
import sqlite3
import time

import pytest
import xxhash

import runpoint as rp
from runpoint.artifacts.manifest import Manifest
from runpoint.store import MediaRecord, RunRecord, RunStatus, WriteBatch
from runpoint.store.sqlite import SQLiteStore


def _run(store: SQLiteStore, run_id: str = "r1") -> None:
    now = time.time()
    store.create_run(RunRecord(id=run_id, project="p", name="n", status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir=f"p/{run_id}"))


@pytest.mark.parametrize("path", ["media/../../outside.png", "media/../meta.json", "../escape.png", "/tmp/abs.png"])
def test_the_store_writes_media_files_only_under_the_runs_media_directory(tmp_path, path) -> None:
    store = SQLiteStore(tmp_path / "runpoint.db")
    _run(store)
    (tmp_path / "p" / "r1").mkdir(parents=True)
    before = {p for p in tmp_path.rglob("*") if p.is_file()}
    record = MediaRecord(key="k", step=0, kind="image", time=time.time(), path=path, file=b"\x89PNG evil")
    with pytest.raises(rp.StoreError, match="leaves"):
        store.write("r1", WriteBatch(media=[record]))
    written = {p for p in tmp_path.rglob("*") if p.is_file()} - before
    assert not [p for p in written if p.read_bytes() == b"\x89PNG evil"]
    store.close()
    with sqlite3.connect(tmp_path / "runpoint.db") as conn:
        assert conn.execute("SELECT count(*) FROM media").fetchone() == (0,)


def test_a_safe_media_path_is_written_where_it_says(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "runpoint.db")
    _run(store)
    (tmp_path / "p" / "r1").mkdir(parents=True)
    record = MediaRecord(key="k", step=0, kind="image", time=time.time(), path="media/k/0000000000.png", file=b"ok")
    store.write("r1", WriteBatch(media=[record]))
    assert (tmp_path / "p" / "r1" / "media" / "k" / "0000000000.png").read_bytes() == b"ok"
    store.close()


@pytest.mark.parametrize("name", ["../secret", "a/b", "..\\secret", ".hidden", "x\x00y"])
def test_a_manifest_naming_a_file_outside_its_directory_is_corrupt(name) -> None:
    document = {
        "format": "runpoint-checkpoint", "format_version": 1, "step": 1, "created_at": 0.0,
        "files": {name: {"bytes": 1, "hash": "00"}},
    }
    with pytest.raises(rp.CheckpointCorruptError, match="leaves the checkpoint directory"):
        Manifest.from_json(json.dumps(document))


def test_a_remote_checkpoint_cannot_read_a_file_beside_it_through_its_manifest() -> None:
    pytest.importorskip("fsspec")
    import fsspec
    import torch

    fs = fsspec.filesystem("memory")
    base = f"memory://guard-{time.time_ns()}"
    ckpt = rp.CheckpointManager(f"{base}/ckpts", rng=False)
    ckpt.save(1, {"w": torch.ones(4)})
    secret = b"the neighbour's secret"
    fs.pipe_file(f"{base}/secret", secret)
    manifest_path = f"{base}/ckpts/step-000001/manifest.json"
    manifest = json.loads(fs.cat_file(manifest_path))
    manifest["files"]["../../secret"] = {"bytes": len(secret), "hash": xxhash.xxh3_128_hexdigest(secret)}
    fs.pipe_file(manifest_path, json.dumps(manifest).encode())
    with pytest.raises(rp.CheckpointError, match="leaves the checkpoint directory"):
        rp.load_checkpoint(f"{base}/ckpts/step-000001")
    fs.rm(base.removeprefix("memory://"), recursive=True)
