"""The client of a team server's files API: upload, download, list and delete a run's files.

Uploads go straight to the object store when the server hands out a presigned PUT, and
through the server otherwise; either way the file is streamed from disk, never read whole
into memory, and carries its xxh3-128 so the server can refuse a damaged body.
:meth:`RemoteFiles.upload_checkpoint` uploads the manifest last: on an object store there
is no rename, so a checkpoint is visible (has a manifest) only once every file is there.

Example::

    files = RemoteFiles("https://runs.example.com", token=os.environ["RUNPOINT_TOKEN"])
    files.upload_checkpoint(run_id, "runpoint/vision/abc123/checkpoints/step-000100",
                            "checkpoints/step-000100")
    files.download(run_id, "logs/console.log", "console.log")
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import httpx

from ..errors import CheckpointError, RunpointError
from ..store.wire import check_relative_path

HASH_HEADER = "x-runpoint-xxh3"
CHUNK = 4 * 2**20
UPLOAD_THREADS = 4


class RemoteFileError(RunpointError):
    """The server or the object store refused or failed a file request; ``status`` is the
    HTTP status (None when it could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def file_xxh3(path: str | os.PathLike[str]) -> str:
    """The xxh3-128 hex of a file's bytes, as checkpoint manifests record it."""
    import xxhash

    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except Exception:
        return response.text[:200] or response.reason_phrase


class RemoteFiles:
    """A run's files on the team server at ``base_url`` (token: the argument, else ``$RUNPOINT_TOKEN``)."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 60.0,
                 client: httpx.Client | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        token = token if token is not None else os.environ.get("RUNPOINT_TOKEN") or None
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._http = client or httpx.Client(base_url=self.base_url, timeout=timeout)
        self._http.headers.update(headers)
        self._direct = httpx.Client(timeout=timeout)  # presigned URLs: no token to the object store

    def close(self) -> None:
        self._http.close()
        self._direct.close()

    def __enter__(self) -> "RemoteFiles":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, run_id: str, path: str | None = None, suffix: str = "") -> str:
        base = f"/api/store/runs/{quote(run_id, safe='')}/files"
        return base if path is None else f"{base}/{quote(check_relative_path(path, 'path'))}{suffix}"

    def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RemoteFileError(f"{method} {self.base_url}{url.split('?')[0]} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400 and not (response.status_code == 404 and url.endswith(("/upload-url", "/download-url"))):
            raise RemoteFileError(f"{method} {url.split('?')[0]}: HTTP {response.status_code}: {_detail(response)}",
                                  response.status_code)
        return response

    def _chunks(self, path: str | os.PathLike[str]) -> Iterator[bytes]:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def upload(self, run_id: str, rel_path: str, local_path: str | os.PathLike[str], *, xxh3: str | None = None) -> int:
        """Upload ``local_path`` as the run's ``rel_path``; the bytes sent.

        ``xxh3`` (a manifest's hash of the file) saves hashing the file first.
        """
        size = os.path.getsize(local_path)
        digest = xxh3 or file_xxh3(local_path)
        offer = self._request("POST", self._url(run_id, rel_path, "/upload-url"), json={"size": size, "xxh3": digest})
        if offer.status_code == 404 and offer.json().get("proxy"):
            headers = {HASH_HEADER: digest, "content-length": str(size), "content-type": "application/octet-stream"}
            self._request("PUT", self._url(run_id, rel_path), content=self._chunks(local_path), headers=headers)
            return size
        if offer.status_code == 404:
            raise RemoteFileError(f"run {run_id}: {_detail(offer)}", 404)
        signed = offer.json()
        where = signed["url"].split("?")[0]  # the query string is the signature: never in a message
        try:
            response = self._direct.request(signed["method"], signed["url"], content=self._chunks(local_path),
                                            headers=signed.get("headers") or {})
        except httpx.HTTPError as exc:
            raise RemoteFileError(f"uploading {rel_path} to {where} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 300:
            raise RemoteFileError(f"uploading {rel_path} to {where}: HTTP {response.status_code}: {response.text[:200]}",
                                  response.status_code)
        return size

    def download(self, run_id: str, rel_path: str, dest: str | os.PathLike[str]) -> Path:
        """The run's ``rel_path`` written to ``dest`` (replaced whole, only once every byte arrived);
        straight from the object store when the server presigns downloads."""
        target = Path(dest)
        partial = target.with_name(f".{target.name}.part")
        offer = self._request("POST", self._url(run_id, rel_path, "/download-url"))
        if offer.status_code == 404 and not offer.json().get("proxy"):
            raise RemoteFileError(f"GET {rel_path}: HTTP 404: {_detail(offer)}", 404)
        client, url = (self._http, self._url(run_id, rel_path)) if offer.status_code == 404 else (self._direct, offer.json()["url"])
        try:
            with client.stream("GET", url) as response:
                if response.status_code >= 400:
                    response.read()
                    raise RemoteFileError(f"GET {rel_path}: HTTP {response.status_code}: {_detail(response)[:200]}",
                                          response.status_code)
                expected = int(response.headers.get("content-length", -1))
                received = 0
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK):
                        out.write(chunk)
                        received += len(chunk)
            if expected >= 0 and received != expected:
                raise RemoteFileError(f"GET {rel_path}: got {received} of {expected} bytes")
            os.replace(partial, target)
        except httpx.HTTPError as exc:
            raise RemoteFileError(f"GET {rel_path} failed: {type(exc).__name__}: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return target

    def list(self, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        """(path, size) of the run's files whose path starts with ``prefix``."""
        response = self._request("GET", self._url(run_id), params={"prefix": prefix})
        return [(entry["path"], int(entry["bytes"])) for entry in response.json()["files"]]

    def delete_prefix(self, run_id: str, prefix: str) -> int:
        """Remove the run's files under ``prefix`` (manifests first); how many were removed."""
        return int(self._request("DELETE", self._url(run_id), params={"prefix": prefix}).json()["deleted"])

    def upload_checkpoint(self, run_id: str, local_checkpoint_dir: str | os.PathLike[str], rel_dir: str) -> int:
        """Upload a committed local checkpoint to the run's ``rel_dir``; the bytes sent.

        Any manifest already there goes first and the new one last, so readers never see a
        manifest beside files of another version or missing files.
        """
        from ..artifacts.manifest import MANIFEST_NAME, Manifest

        folder = Path(local_checkpoint_dir)
        rel_dir = check_relative_path(rel_dir.rstrip("/"), "rel_dir")
        manifest_path = folder / MANIFEST_NAME
        try:
            manifest = Manifest.from_json(manifest_path.read_bytes(), str(manifest_path))
        except FileNotFoundError:
            raise CheckpointError(f"{folder} has no {MANIFEST_NAME}: not a committed checkpoint") from None
        for name, entry in manifest.files.items():
            local = folder / name
            if not local.is_file() or local.stat().st_size != entry.bytes:
                raise CheckpointError(f"{local} is missing or not the size its manifest records ({entry.bytes} bytes)")
        self.delete_prefix(run_id, f"{rel_dir}/{MANIFEST_NAME}")
        with ThreadPoolExecutor(min(UPLOAD_THREADS, max(1, len(manifest.files)))) as pool:
            sent = sum(pool.map(lambda item: self.upload(run_id, f"{rel_dir}/{item[0]}", folder / item[0], xxh3=item[1].hash),
                                manifest.files.items()))
        return sent + self.upload(run_id, f"{rel_dir}/{MANIFEST_NAME}", manifest_path)
