"""The team server's files API and its client: a run's files on a local directory or S3 (moto),
uploaded through the server or straight to the object store with a presigned PUT."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
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
