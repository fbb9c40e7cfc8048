"""Checkpoints in S3 (moto's server on 127.0.0.1): the same commit protocol, manifest last."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import torch

import runpoint as rp
from runpoint.checkpoint import verify_checkpoint
from runpoint.store import checkpoint_registry

from .conftest import cli

pytest.importorskip("s3fs")
pytest.importorskip("moto")

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, **CREDENTIALS},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"moto_server did not start: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
    yield endpoint
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    if server.stderr is not None:
        server.stderr.close()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch):
    import s3fs

    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    options = {"client_kwargs": {"endpoint_url": s3_endpoint}, "use_listings_cache": False, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**options)
    name = f"ckpt-{uuid.uuid4().hex[:12]}"
    fs.mkdir(name)
    return fs, name, options


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))


def test_save_restore_and_retention_in_s3(bucket) -> None:
    fs, name, options = bucket
    url = f"s3://{name}/runs/a/checkpoints"
    ckpt = rp.CheckpointManager(url, storage_options=options, keep_last=2, keep_best=1, monitor="loss")
    model = _model()
    for step, loss in ((1, 0.2), (2, 0.5), (3, 0.4), (4, 0.6)):
        with torch.no_grad():
            model[0].weight.fill_(step)
        ckpt.save(step, {"model": model, "step": step}, metrics={"loss": loss})
    assert [c.step for c in ckpt.list()] == [1, 3, 4]
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{name}/runs/a/checkpoints")) == [
        "best", "latest", "step-000001", "step-000003", "step-000004"]
    assert fs.cat(f"{name}/runs/a/checkpoints/latest") == b"step-000004\n"
    assert fs.cat(f"{name}/runs/a/checkpoints/best") == b"step-000001\n"
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{name}/runs/a/checkpoints/step-000004")) == [
        "manifest.json", "state.msgpack", "tensors.safetensors"]

    fresh = _model()
    state = {"model": fresh, "step": 0}
    reopened = rp.CheckpointManager(url, storage_options=options, monitor="loss")
    assert reopened.restore(state) == 5 and state["step"] == 4
    assert torch.equal(fresh[0].weight, torch.full_like(fresh[0].weight, 4.0))
    assert reopened.restore(state, which="best") == 2 and state["step"] == 1
    assert rp.load_checkpoint(url, which=3, storage_options=options)["step"] == 3
    assert all(r.ok for r in verify_checkpoint(url, storage_options=options))


def test_a_prefix_without_manifest_is_not_a_checkpoint_and_leftovers_are_cleaned(bucket) -> None:
    fs, name, options = bucket
    url = f"s3://{name}/ckpts"
    ckpt = rp.CheckpointManager(url, storage_options=options, rng=False)
    ckpt.save(1, {"w": torch.ones(3)})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    marker = {"host": socket.gethostname(), "pid": int(dead.stdout), "started": time.time()}
    fs.pipe(f"{name}/ckpts/step-000002/tensors.safetensors", b"half an upload")
    fs.pipe(f"{name}/ckpts/step-000002/.writing", json.dumps(marker).encode())
    alive = {**marker, "pid": os.getpid()}
    fs.pipe(f"{name}/ckpts/step-000003/tensors.safetensors", b"an upload in progress")
    fs.pipe(f"{name}/ckpts/step-000003/.writing", json.dumps(alive).encode())

    reopened = rp.CheckpointManager(url, storage_options=options, rng=False)
    assert [c.step for c in reopened.list()] == [1]
    names = sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{name}/ckpts"))
    assert "step-000002" not in names and "step-000003" in names  # a live writer's upload is left alone
    state = {"w": torch.zeros(3)}
    assert reopened.restore(state) == 2 and torch.equal(state["w"], torch.ones(3))


def test_a_corrupt_object_falls_back_and_async_compressed_saves_work(bucket) -> None:
    fs, name, options = bucket
    url = f"s3://{name}/zst"
    ckpt = rp.CheckpointManager(url, storage_options=options, async_save=True, compress="zstd", rng=False)
    for step in (1, 2):
        ckpt.save(step, {"w": torch.full((1000,), float(step))})
    assert ckpt.wait().step == 2
    key = f"{name}/zst/step-000002/tensors.safetensors.zst"
    data = bytearray(fs.cat(key))
    data[-5] ^= 0xFF
    fs.pipe(key, bytes(data))
    state = {"w": torch.zeros(1000)}
    assert rp.CheckpointManager(url, storage_options=options).restore(state) == 2
    assert torch.equal(state["w"], torch.ones(1000))


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_a_run_with_checkpoints_in_s3_is_listed_and_verified_by_the_cli(bucket, s3_endpoint, root, store_at,
                                                                        monkeypatch) -> None:
    fs, name, options = bucket
    url = f"s3://{name}/runs/r1"
    with rp.init(project="p", id="r1", root=root, console=False) as run:
        ckpt = rp.CheckpointManager(run, directory=url, storage_options=options, keep_last=1)
        ckpt.save(5, {"model": _model()})
        ckpt.save(6, {"model": _model()})
    registry = checkpoint_registry(store_at())
    assert [(r.step, r.path, r.deleted_at is not None) for r in registry.list_checkpoints("r1", include_deleted=True)] == [
        (5, f"{url}/step-000005", True), (6, f"{url}/step-000006", False)]
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    listed = cli(root, "ckpt", "ls", "r1", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["step"] for c in json.loads(listed.stdout)["checkpoints"]] == [6]
    verified = cli(root, "ckpt", "verify", url)
    assert verified.returncode == 0 and "ok" in verified.stdout, verified.stderr


def test_export_to_a_url_uses_the_managers_storage_options(bucket) -> None:
    import safetensors.torch

    fs, name, options = bucket  # the endpoint is in the options only: without them s3fs would go to AWS
    ckpt = rp.CheckpointManager(f"s3://{name}/ckpts", storage_options=options, rng=False)
    model = _model()
    ckpt.save(1, {"model": model, "step": 1})
    written = ckpt.export(f"s3://{name}/deploy/model.safetensors", which="latest")
    assert written == f"s3://{name}/deploy/model.safetensors"
    weights = safetensors.torch.load(fs.cat(f"{name}/deploy/model.safetensors"))
    assert weights.keys() == model.state_dict().keys()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    elsewhere = ckpt.export(f"s3://{name}/other/model.safetensors", which="latest",
                            storage_options={**options, "s3_additional_kwargs": {"Metadata": {"stage": "prod"}}})
    assert fs.metadata(elsewhere.removeprefix("s3://")) == {"stage": "prod"}  # the options given win


@pytest.mark.slow  # two ranks against the moto server: ~15 s; sharded commits on local disk are in the default run
def test_a_sharded_two_rank_ddp_checkpoint_commits_restores_and_verifies_in_s3(bucket, tmp_path, root) -> None:
    from .multirank import launch

    fs, name, options = bucket
    url = f"s3://{name}/ddp"
    job = launch('''
import json, os, torch
import runpoint as rp
from torch.nn.parallel import DistributedDataParallel
options = json.loads(os.environ["S3_OPTIONS"])
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Linear(4, 4))
optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
ckpt = rp.CheckpointManager(os.environ["S3_URL"], storage_options=options, keep_last=1)
for step in range(2):
    model(torch.ones(2, 4)).sum().backward()
    optimizer.step()
    ckpt.save(step, {"model": model, "optimizer": optimizer, "rank": dist.get_rank()})
torch.manual_seed(1)
fresh = DistributedDataParallel(torch.nn.Linear(4, 4))
state = {"model": fresh, "optimizer": torch.optim.AdamW(fresh.parameters(), lr=0.1), "rank": -1}
start = rp.CheckpointManager(os.environ["S3_URL"], storage_options=options).restore(state)
same = all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters()))
print("restored", start, state["rank"], same, state["optimizer"].state_dict()["state"][0]["step"].item(), flush=True)
''', 2, tmp_path, root, env={"S3_URL": url, "S3_OPTIONS": json.dumps(options), **CREDENTIALS})
    assert job.wait(120) == [0, 0], job.logs()
    for rank in (0, 1):
        assert f"restored 2 {rank} True 2.0" in job.log(rank), job.logs()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{name}/ddp")) == ["latest", "step-000001"]
    manifest = json.loads(fs.cat(f"{name}/ddp/step-000001/manifest.json"))
    assert manifest["sharded"]["world_size"] == 2
    assert {"dcp/.metadata", "ranks/rank-00000/state.msgpack", "ranks/rank-00001/state.msgpack"} <= set(manifest["files"])
    assert not [p for p in fs.find(f"{name}/ddp") if ".tmp-" in p or ".writing" in p]
    assert [r.ok for r in verify_checkpoint(url, storage_options=options)] == [True]


def test_encrypted_async_saves_in_s3_restore_and_verify_with_and_without_the_key(bucket) -> None:
    pytest.importorskip("cryptography")
    from runpoint.checkpoint.rekey import rekey
    from runpoint.errors import CheckpointKeyError, InvalidArgumentError

    fs, name, options = bucket
    url = f"s3://{name}/sealed"
    key = rp.EncryptionKey.from_bytes(bytes(range(32)))
    model = _model()
    with rp.CheckpointManager(url, storage_options=options, encrypt=key, async_save=True, compress="zstd") as ckpt:
        ckpt.save(1, {"model": model, "step": 1})
        ckpt.wait()
    stored = fs.cat(f"{name}/sealed/step-000001/state.msgpack.zst")
    assert stored.startswith(b"RPSEAL") and b"step" not in stored
    fresh = _model()
    state = {"model": fresh, "step": 0}
    assert rp.CheckpointManager(url, storage_options=options, encrypt=key).restore(state) == 2 and state["step"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    with pytest.raises(CheckpointKeyError, match=key.key_id):
        rp.CheckpointManager(url, storage_options=options).restore(state)
    assert all(r.ok for r in verify_checkpoint(url, storage_options=options))
    assert all(r.ok for r in verify_checkpoint(url, storage_options=options, key=key))
    with pytest.raises(InvalidArgumentError, match="no atomic rename"):
        rekey(url, key, rp.EncryptionKey.from_bytes(bytes(32)), storage_options=options)
