"""Team server files: uploading a checkpoint through the files API versus a plain S3 PUT.

Against moto's S3 server on loopback, the same bytes are put (1) with boto3's ``put_object``
(one PUT, the floor), (2) with s3fs's ``put_file``, (3) by :class:`runpoint.remote.RemoteFiles`
with a presigned PUT (the bytes go straight to S3), (4) by ``RemoteFiles`` through the server
(``runpoint server`` streams them to S3, hash-checked), and (5, 6) a whole checkpoint by
``upload_checkpoint`` both ways. The server runs in its own process (uvicorn), as it would.
The target: presigned uploads at >= 0.8x the plain PUT.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ._harness import Context, Section, Table, best_of

TITLE = "Team server files: checkpoint upload throughput"
ROOT = Path(__file__).resolve().parents[1]
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}

_SERVER = """
import sys, uvicorn
from fastapi import FastAPI
from runpoint.server.files_api import files_router
from runpoint.server.object_store import ObjectStore
app = FastAPI()
app.include_router(files_router(ObjectStore.open(sys.argv[2], presign=sys.argv[3] == "1"), lambda run_id: "bench"))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, *args, str(port)] if args[0] == "-m" else [sys.executable, "-c", _SERVER, str(port), *args],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args} did not start") from None
            time.sleep(0.1)


def _rate(size: int, seconds: float) -> float:
    return size / seconds / 2**20


def run(ctx: Context) -> Section:  # long: one measurement script, read top to bottom
    import boto3
    import s3fs
    import torch

    import runpoint as rp
    from runpoint.remote.files import RemoteFiles

    size = ctx.size(200 * 2**20, 50 * 2**20, 4 * 2**20)
    repeats = ctx.size(3, 2, 1)
    work = ctx.scratch("files")
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        moto, moto_port = _start(["-m", "moto.server", "-H", "127.0.0.1", "-p"], env)
        processes.append(moto)
        endpoint = f"http://127.0.0.1:{moto_port}"
        env["AWS_ENDPOINT_URL"] = endpoint
        os.environ.update({**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint})
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
        fs.mkdir(bucket)
        servers = {}
        for mode, flag in (("presigned", "1"), ("proxy", "0")):
            process, port = _start([f"s3://{bucket}/team", flag], env)
            processes.append(process)
            servers[mode] = RemoteFiles(f"http://127.0.0.1:{port}", timeout=300)

        blob = work / "blob.bin"
        blob.write_bytes(os.urandom(size))
        torch.manual_seed(0)
        rp.CheckpointManager(work / "ckpts", rng=False).save(1, {"w": torch.randn(size // 4)})
        checkpoint = work / "ckpts" / "step-000001"
        checkpoint_bytes = sum(path.stat().st_size for path in checkpoint.iterdir())
        from runpoint.remote.files import file_xxh3

        digest = file_xxh3(blob)
        client = boto3.client("s3", endpoint_url=endpoint)

        def boto_put() -> None:
            with open(blob, "rb") as body:
                client.put_object(Bucket=bucket, Key="plain/boto3.bin", Body=body)

        cases: list[tuple[str, int, Callable[[], Any]]] = [
            ("boto3 put_object (one PUT)", size, boto_put),
            ("s3fs put_file", size, lambda: fs.put_file(str(blob), f"{bucket}/plain/s3fs.bin")),
            ("RemoteFiles.upload, presigned PUT", size, lambda: servers["presigned"].upload("r", "media/b.bin", blob, xxh3=digest)),
            ("RemoteFiles.upload, through the server", size, lambda: servers["proxy"].upload("r", "media/b.bin", blob, xxh3=digest)),
            ("upload_checkpoint, presigned", checkpoint_bytes,
             lambda: servers["presigned"].upload_checkpoint("r", checkpoint, "checkpoints/step-000001")),
            ("upload_checkpoint, through the server", checkpoint_bytes,
             lambda: servers["proxy"].upload_checkpoint("r", checkpoint, "checkpoints/step-000001")),
        ]
        rows, numbers = [], {}
        floor = None
        for name, nbytes, fn in cases:
            seconds = best_of(repeats, fn)
            rate = _rate(nbytes, seconds)
            floor = floor or rate
            rows.append([name, nbytes / 2**20, seconds, rate, rate / floor])
            numbers[name] = {"bytes": nbytes, "seconds": seconds, "mib_per_s": rate}
        hash_seconds = best_of(repeats, lambda: file_xxh3(blob))
        numbers["xxh3 of the file"] = {"seconds": hash_seconds, "mib_per_s": _rate(size, hash_seconds)}
        for files in servers.values():
            files.close()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    table = Table(["upload", "MiB", "s (best)", "MiB/s", "x boto3"], rows,
                  note=f"moto {endpoint.split(':')[0]} on loopback, best of {repeats}; the xxh3 pass before an upload "
                       f"(skipped for checkpoints: the manifest has the hashes) runs at {_rate(size, hash_seconds):.0f} MiB/s.")
    return Section(TITLE, __doc__ or "", [table], numbers)


if __name__ == "__main__":
    import tempfile

    section = run(Context(workdir=Path(tempfile.mkdtemp()), quick="--quick" in sys.argv, smoke="--smoke" in sys.argv))
    print(section.markdown())
