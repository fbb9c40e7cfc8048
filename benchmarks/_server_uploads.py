"""Checkpoint upload for the team-server benchmark: the same files through runpoint, MLflow and boto3.

The files are a committed checkpoint directory (random, incompressible bytes and a
``manifest.json`` with their xxh3 hashes, computed beforehand as ``save`` computes them),
uploaded to moto's S3: through runpoint's files API (``RemoteFiles.upload_checkpoint``:
presigned PUTs straight to S3, or proxied through the server), through MLflow's artifact
proxy (``MlflowClient.log_artifacts``), and with plain boto3 ``upload_file``. Each upload is
checked by listing what arrived.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from ._services import s3_client


def make_checkpoint(folder: Path, files: int, file_bytes: int) -> int:
    """A committed checkpoint of ``files`` data files in ``folder``; its data bytes."""
    import xxhash

    from runpoint.checkpoint.manifest import MANIFEST_NAME, FileEntry, Manifest

    folder.mkdir(parents=True, exist_ok=True)
    entries = {}
    for index in range(files):
        path = folder / f"shard-{index:02d}.safetensors"
        digest = xxhash.xxh3_128()  # the manifest's hash, as save computes it
        with open(path, "wb") as out:
            for offset in range(0, file_bytes, 2**20):
                chunk = os.urandom(min(2**20, file_bytes - offset))
                digest.update(chunk)
                out.write(chunk)
        entries[path.name] = FileEntry(bytes=path.stat().st_size, hash=digest.hexdigest())
    manifest = Manifest(step=100, sequence=1, created_at=time.time(), files=entries)
    (folder / MANIFEST_NAME).write_text(manifest.to_json())
    return sum(entry.bytes for entry in entries.values())


def _figures(seconds: float, total: int) -> dict[str, Any]:
    return {"seconds": seconds, "mib_per_s": total / 2**20 / seconds, "bytes": total}


def _folder_sizes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in folder.iterdir()}


def runpoint_upload(url: str, folder: Path, run_id: str) -> dict[str, Any]:
    """``RemoteFiles.upload_checkpoint`` into a new run on the server at ``url``."""
    from runpoint.remote.files import RemoteFiles
    from runpoint.store import RunRecord, RunStatus, open_store

    store = open_store(url)
    now = time.time()
    store.create_run(RunRecord(id=run_id, project="ckpt", name=run_id, status=RunStatus.RUNNING, created_at=now,
                               heartbeat_at=now, dir=f"ckpt/{run_id}"))
    store.close()
    with RemoteFiles(url) as files:  # the token: $RUNPOINT_TOKEN
        started = time.perf_counter()
        sent = files.upload_checkpoint(run_id, folder, "checkpoints/step-000100")
        seconds = time.perf_counter() - started
        listed = {path.rsplit("/", 1)[-1]: size for path, size in files.list(run_id, "checkpoints/step-000100/")}
    if listed != _folder_sizes(folder):
        raise AssertionError(f"the server lists {listed}, not the checkpoint's files")
    return _figures(seconds, sent)


def mlflow_upload(url: str, experiment_id: str, folder: Path) -> dict[str, Any]:
    """``log_artifacts`` of the same folder through MLflow's artifact proxy (``--artifacts-destination``)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id, run_name="checkpoint").info.run_id
    started = time.perf_counter()
    client.log_artifacts(run_id, str(folder), "checkpoints/step-000100")
    seconds = time.perf_counter() - started
    listed = {info.path.rsplit("/", 1)[-1]: info.file_size for info in client.list_artifacts(run_id, "checkpoints/step-000100")}
    if listed != _folder_sizes(folder):
        raise AssertionError(f"MLflow lists {listed}, not the checkpoint's files")
    return _figures(seconds, sum(listed.values()))


def boto3_upload(endpoint: str, bucket: str, folder: Path) -> dict[str, Any]:
    """Plain ``upload_file`` of each file (boto3's default transfer: multipart, 10 threads per file)."""
    client = s3_client(endpoint)
    prefix = "plain/checkpoints/step-000100"
    started = time.perf_counter()
    for path in sorted(folder.iterdir(), key=lambda p: p.name == "manifest.json"):
        client.upload_file(str(path), bucket, f"{prefix}/{path.name}")
    seconds = time.perf_counter() - started
    listed = {item["Key"].rsplit("/", 1)[-1]: item["Size"]
              for item in client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])}
    if listed != _folder_sizes(folder):
        raise AssertionError(f"S3 lists {listed}, not the checkpoint's files")
    return _figures(seconds, sum(listed.values()))
