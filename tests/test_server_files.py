"""The team server's files API and its client: a run's files on a local directory or S3 (moto),
uploaded through the server or straight to the object store with a presigned PUT."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import xxhash
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from runpoint.errors import RunNotFoundError
from runpoint.remote.files import RemoteFileError, RemoteFiles, file_xxh3
from runpoint.server.auth import Principal
from runpoint.server.files_api import files_router
from runpoint.server.object_store import ObjectStore

RUNS = {"run1": "vision", "run2": "nlp"}
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def project_of(run_id: str) -> str:
    try:
        return RUNS[run_id]
    except KeyError:
        raise RunNotFoundError(run_id) from None


def files_app(files: ObjectStore, audited: list[tuple] | None = None) -> FastAPI:
    """The files router alone; ``x-test-scope``/``x-test-project`` stand in for a token."""
    app = FastAPI()
    app.include_router(files_router(files, project_of))
    if audited is not None:
        app.state.audit_sink = lambda who, action, project, run_id, target, detail: audited.append((action, project, run_id, target))

    @app.middleware("http")
    async def principal(request: Request, call_next):  # type: ignore[no-untyped-def]
        scope = request.headers.get("x-test-scope")
        if scope:
            request.state.principal = Principal("tester", scope, request.headers.get("x-test-project"))  # type: ignore[arg-type]
        return await call_next(request)

    return app


def test_files_round_trip_through_the_server_on_a_local_directory(tmp_path: Path) -> None:
    location = tmp_path / "artifacts"
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t-bytes")
    audited: list[tuple] = []
    client = TestClient(files_app(ObjectStore.open(location), audited))
    files = RemoteFiles("http://testserver", client=client)
    data = os.urandom(3 * 2**20 + 17)
    (tmp_path / "blob.bin").write_bytes(data)

    # no presigning on a local directory: the upload goes through the server, hash-checked
    assert files.upload("run1", "media/blob.bin", tmp_path / "blob.bin") == len(data)
    assert (location / "vision" / "run1" / "media" / "blob.bin").read_bytes() == data
    assert files.download("run1", "media/blob.bin", tmp_path / "back.bin").read_bytes() == data
    assert client.get("/api/store/runs/run1/files/media/blob.bin", headers={"range": "bytes=10-19"}).content == data[10:20]
    assert client.get("/api/store/runs/run1/files/media/blob.bin", headers={"range": "bytes=-5"}).content == data[-5:]
    assert client.get("/api/store/runs/run1/files/media/blob.bin", headers={"range": f"bytes={len(data)}-"}).status_code == 416
    assert ("files.put", "vision", "run1", "media/blob.bin") in audited

    # a body whose hash is not the header's: 400, and nothing stored (no leftover upload either)
    bad = client.put("/api/store/runs/run1/files/media/bad.bin", content=b"abc", headers={"x-runpoint-xxh3": xxhash.xxh3_128_hexdigest(b"abd")})
    assert bad.status_code == 400 and "nothing stored" in bad.json()["detail"]
    assert not (location / "vision" / "run1" / "media" / "bad.bin").exists()
    assert list((location / ".uploads").iterdir()) == []
    assert client.put("/api/store/runs/run1/files/x", content=b"a", headers={"x-runpoint-xxh3": "zz"}).status_code == 400

    # paths that leave the run, the location or name nothing: refused, nothing read or written outside
    (location / "vision" / "run1" / "media" / "link.txt").symlink_to(secret)
    for path in ("%2e%2e/%2e%2e/%2e%2e/secret.txt", "media/..%2f..%2f..%2f..%2fsecret.txt", "%2ftmp%2fx", "media%5c..%5cx",
                 "media//blob.bin", "media/%2e/blob.bin", "media/link.txt", "media/nul%00.bin"):
        got = client.get(f"/api/store/runs/run1/files/{path}")
        assert got.status_code in (400, 404) and b"s3cr3t" not in got.content, path
        if path != "media/link.txt":
            assert client.put(f"/api/store/runs/run1/files/{path}", content=b"x").status_code in (400, 404), path
    # a PUT over a link replaces the link, never writes through it
    assert client.put("/api/store/runs/run1/files/media/link.txt", content=b"x").status_code == 201
    assert (location / "vision" / "run1" / "media" / "link.txt").read_bytes() == b"x"
    (location / "vision" / "run1" / "media" / "link2.txt").symlink_to(secret)
    (tmp_path / "outside").mkdir()
    (location / "vision" / "run1" / "linked").symlink_to(tmp_path / "outside")
    assert client.put("/api/store/runs/run1/files/linked/x.bin", content=b"x").status_code == 400
    assert client.get("/api/store/runs/run1/files/linked/x.bin").status_code == 404
    assert list((tmp_path / "outside").iterdir()) == [] and list((location / ".uploads").iterdir()) == []
    (tmp_path / "outside").rmdir()
    assert secret.read_text() == "s3cr3t-bytes" and sorted(p.name for p in tmp_path.iterdir()) == ["artifacts", "back.bin", "blob.bin", "secret.txt"]
    assert client.get("/api/store/runs/..%2fvision/files/x").status_code in (400, 404)
    with pytest.raises(Exception):
        files.upload("run1", "../escape.bin", tmp_path / "blob.bin")

    # listing and deleting a prefix; unknown runs and scopes
    files.upload("run1", "checkpoints/step-000001/a.bin", tmp_path / "blob.bin")
    assert files.list("run1", "checkpoints/") == [("checkpoints/step-000001/a.bin", len(data))]
    assert [p for p, _ in files.list("run1")] == ["checkpoints/step-000001/a.bin", "media/blob.bin", "media/link.txt"]  # links are not listed
    assert files.delete_prefix("run1", "checkpoints/") == 1 and files.list("run1", "checkpoints/") == []
    with pytest.raises(RemoteFileError) as missing:
        files.download("nope", "media/blob.bin", tmp_path / "x.bin")
    assert missing.value.status == 404 and not (tmp_path / "x.bin").exists()
    reader = {"x-test-scope": "read"}
    assert client.put("/api/store/runs/run1/files/media/c.bin", content=b"c", headers=reader).status_code == 403
    assert client.get("/api/store/runs/run1/files/media/blob.bin", headers=reader).status_code == 200
    other = {"x-test-scope": "write", "x-test-project": "nlp"}
    assert client.get("/api/store/runs/run1/files/media/blob.bin", headers=other).status_code == 403
    assert client.delete("/api/store/runs/run1/files", params={"prefix": "media/"}, headers=reader).status_code == 403
    assert (location / "vision" / "run1" / "media" / "blob.bin").exists()


def test_a_store_that_fails_while_a_body_streams_answers_503_and_keeps_nothing(tmp_path: Path) -> None:
    calls: list[str] = []

    class FailingSink:
        def write(self, data: object) -> None:
            calls.append("write")
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            calls.append("close")

        def abort(self) -> None:
            calls.append("abort")

    files = ObjectStore.open(tmp_path / "artifacts")
    files.writer = lambda *args: FailingSink()  # type: ignore[method-assign, assignment, return-value]
    client = TestClient(files_app(files))
    response = client.put("/api/store/runs/run1/files/media/big.bin", content=b"x" * (20 * 2**20))
    assert response.status_code == 503 and "nothing stored" in response.json()["detail"]
    assert calls == ["write", "abort"]


def test_the_dashboard_reads_a_runs_files_from_the_object_store(root: Path) -> None:
    """The team server's dashboard: the store knows the run, its files are only in the object store."""
    import shutil

    import fsspec
    import numpy as np
    import torch

    import runpoint as rp
    from runpoint.artifacts.storage import RemoteArtifacts
    from runpoint.server.app import create_app

    with rp.init(project="vision", root=root, config={"lr": 0.1}, console=False, system_metrics=False) as run:
        rp.CheckpointManager(run).save(5, {"w": torch.arange(8.0)})
        run.log({"samples": rp.Image(np.full((4, 4, 3), 7, dtype=np.uint8))}, step=5)
    local = root / "vision" / run.id
    (local / "logs").mkdir(exist_ok=True)
    import zstandard  # the log's first segment, compressed as a long run's console rotates it

    (local / "logs" / "console.log.1.zst").write_bytes(zstandard.ZstdCompressor().compress(b"hello\n"))
    (local / "logs" / "console.log").write_text("from s3\n")
    location = f"memory://dash-{uuid.uuid4().hex[:8]}"
    fsspec.filesystem("memory").put(str(local), f"{location}/vision/{run.id}", recursive=True)
    image = (local / "media" / "samples").glob("*.png").__next__()
    image_bytes = image.read_bytes()
    shutil.rmtree(local)  # only the object store has them now

    fsspec.filesystem("memory").pipe(f"{location}/nlp/other/logs/console.log", b"another project's log\n")
    with sqlite3.connect(root / "runpoint.db") as db:  # a client that recorded a crafted directory
        db.execute("UPDATE runs SET dir = 'nlp/other' WHERE id = ?", (run.id,))
    app = create_app(root, loopback_only=False)
    app.state.dashboard = replace(app.state.dashboard, files=None, object_store=ObjectStore(RemoteArtifacts(location)))
    client = TestClient(app)
    assert client.get(f"/api/runs/{run.id}").json()["config"] == {"lr": 0.1}
    console = client.get(f"/api/runs/{run.id}/console").json()
    assert console["files"][0] == {"name": "console.log", "bytes": 14} and console["text"] == "hello\nfrom s3\n"
    assert console["file"] == "console.log" and console["files"][1]["name"] == "runpoint.log"
    events = client.get(f"/api/runs/{run.id}/console", params={"file": "runpoint.log"}).json()
    assert "run.start" in events["text"] and "checkpoint.commit" in events["text"], events["text"]
    checkpoints = client.get(f"/api/runs/{run.id}/checkpoints").json()
    assert checkpoints["latest"] == "step-000005" and [row["state"] for row in checkpoints["checkpoints"]] == ["present"]
    [media] = client.get(f"/api/runs/{run.id}/media").json()["media"]
    served = client.get(media["url"])
    assert served.status_code == 200 and served.content == image_bytes and served.headers["content-type"] == "image/png"
    for path in ("media/%2e%2e/config.yaml", "config.yaml", "media/..%2fconfig.yaml"):
        assert client.get(f"/api/runs/{run.id}/files/{path}").status_code == 404, path


# -- S3 (moto's server) behind a real uvicorn server ---------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto() -> tuple[subprocess.Popen, str]:
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **CREDENTIALS},
                              start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.1)


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGCONT)
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch):
    """A fresh moto server and bucket; the endpoint reaches s3fs through $AWS_ENDPOINT_URL, as on a real server."""
    pytest.importorskip("s3fs")
    import s3fs

    server, endpoint = _start_moto()
    for key, value in {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    options = {"use_listings_cache": False, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(**options)
    bucket = f"files-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    yield fs, bucket, options, server
    _stop(server)


@pytest.fixture
def serve():
    """Runs an app on a real uvicorn server in a thread; its base URL."""
    import uvicorn

    started: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        started.append((server, thread))
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in started:
        server.should_exit = True
        thread.join(30)


def _model():
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(1024, 2048), torch.nn.ReLU(), torch.nn.Linear(2048, 10))


@pytest.mark.slow
def test_files_on_s3_presigned_and_proxied_and_a_checkpoint_restores_from_the_bucket(s3, serve, tmp_path: Path) -> None:
    import torch

    import runpoint as rp

    fs, bucket, options, _ = s3
    location = f"s3://{bucket}/team"
    presigning = RemoteFiles(serve(files_app(ObjectStore.open(location, options))))
    proxied = RemoteFiles(serve(files_app(ObjectStore.open(location, options, presign=False))))
    data = os.urandom(9 * 2**20 + 3)
    (tmp_path / "blob.bin").write_bytes(data)

    offer = presigning._http.post("/api/store/runs/run1/files/media/a.bin/upload-url", json={"size": len(data)}).json()
    assert offer["method"] == "PUT" and offer["url"].startswith(os.environ["AWS_ENDPOINT_URL"])
    assert proxied._http.post("/api/store/runs/run1/files/media/a.bin/upload-url", json={"size": 1}).json()["proxy"] is True
    for files, name in ((presigning, "a.bin"), (proxied, "b.bin")):
        files.upload("run1", f"media/{name}", tmp_path / "blob.bin")
        assert fs.cat(f"{bucket}/team/vision/run1/media/{name}") == data
        assert files.download("run1", f"media/{name}", tmp_path / f"back-{name}").read_bytes() == data
    fetch = presigning._http.post("/api/store/runs/run1/files/media/a.bin/download-url").json()
    assert fetch["method"] == "GET" and fetch["url"].startswith(os.environ["AWS_ENDPOINT_URL"])  # downloads go direct too
    assert presigning._http.post("/api/store/runs/run1/files/media/none.bin/download-url").status_code == 404
    assert fs.metadata(f"{bucket}/team/vision/run1/media/a.bin") == {"xxh3": file_xxh3(tmp_path / "blob.bin")}
    assert presigning.list("run1", "media/") == [("media/a.bin", len(data)), ("media/b.bin", len(data))]

    # a damaged body through the server: 400, and no object (the multipart upload is aborted)
    bad = proxied._http.put("/api/store/runs/run1/files/media/bad.bin", content=data,
                            headers={"x-runpoint-xxh3": xxhash.xxh3_128_hexdigest(data[:-1])})
    assert bad.status_code == 400 and not fs.exists(f"{bucket}/team/vision/run1/media/bad.bin")

    # literal dot segments (httpx would remove them): never reach the bucket
    host, port = presigning.base_url.removeprefix("http://").split(":")
    for raw in ("/api/store/runs/run1/files/../../../x", "/api/store/runs/run1/files/media/..\\..\\x",
                "/api/store/runs/run1/files//etc/passwd", "/api/store/runs/run1/files/media/%2e%2e/%2e%2e/run2/x"):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.request("PUT", raw, body=b"x")
        assert connection.getresponse().status in (400, 404), raw
        connection.close()
    assert sorted(fs.find(f"{bucket}")) == [f"{bucket}/team/vision/run1/media/a.bin", f"{bucket}/team/vision/run1/media/b.bin"]

    # a checkpoint saved locally, uploaded (manifest last), restored by runpoint's loader from the bucket
    model = _model()
    local = rp.CheckpointManager(tmp_path / "ckpts", rng=False)
    local.save(7, {"model": model, "step": 7})
    presigning.upload_checkpoint("run1", tmp_path / "ckpts" / "step-000007", "checkpoints/step-000007")
    proxied.upload_checkpoint("run2", tmp_path / "ckpts" / "step-000007", "checkpoints/step-000007")
    for run, project in (("run1", "vision"), ("run2", "nlp")):
        state = rp.load_checkpoint(f"{location}/{project}/{run}/checkpoints/step-000007", storage_options=options)
        assert state["step"] == 7
        for key, tensor in model.state_dict().items():
            assert torch.equal(state["model"][key], tensor), key
    remote = rp.CheckpointManager(f"{location}/vision/run1/checkpoints", storage_options=options, rng=False)
    assert [c.step for c in remote.list()] == [7]
    assert presigning.delete_prefix("run1", "checkpoints/") == 4  # 3 files and "latest"
    assert fs.find(f"{bucket}/team/vision/run1/checkpoints") == []


@pytest.mark.slow
def test_an_object_store_that_stops_mid_upload_leaves_no_visible_checkpoint(s3, serve, tmp_path: Path) -> None:
    import runpoint as rp

    fs, bucket, options, moto = s3
    rp.CheckpointManager(tmp_path / "ckpts", rng=False).save(1, {"model": _model()})
    folder = tmp_path / "ckpts" / "step-000001"

    class StoppingMidway(RemoteFiles):
        def _chunks(self, path):  # type: ignore[no-untyped-def]
            for index, chunk in enumerate(super()._chunks(path)):
                if index == 1 and Path(path).name == "tensors.safetensors":
                    os.killpg(moto.pid, signal.SIGSTOP)
                yield chunk

    files = StoppingMidway(serve(files_app(ObjectStore.open(f"s3://{bucket}/team", options))), timeout=3)
    with pytest.raises(RemoteFileError, match="tensors.safetensors.*(Timeout|failed)"):
        files.upload_checkpoint("run1", folder, "checkpoints/step-000001")
    os.killpg(moto.pid, signal.SIGCONT)
    assert not fs.exists(f"{bucket}/team/vision/run1/checkpoints/step-000001/manifest.json")
    assert "manifest.json" not in str(files.list("run1"))
    assert rp.CheckpointManager(f"s3://{bucket}/team/vision/run1/checkpoints", storage_options=options).list() == []
