"""The team server's file location (``--artifacts``): every run's files, keyed
``<project>/<run id>/<relative path>``, in a local directory or an object store.

It is an :class:`~runpoint.artifacts.Artifacts` (so the dashboard and the checkpoint
loader read it as they read a local root) plus what an upload service needs: uploads that
appear whole or not at all, listing and deleting a prefix, and presigned URLs so that
clients send large files straight to S3 rather than through the server.

Example::

    files = ObjectStore.open("s3://bucket/runpoint")
    upload = files.writer("vision", "abc123", "media/sample_0.png")
    upload.write(data)
    upload.close()
    files.presign_put("vision", "abc123", "checkpoints/step-000100/tensors.safetensors", size=1 << 20)
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO, Mapping

from ..artifacts.storage import Artifacts, FileSink, open_artifacts
from ..errors import InvalidArgumentError
from ..store.base import RunRecord
from ..store.wire import check_relative_path
from .run_files import RunFiles

MAX_PRESIGNED_PUT = 5 * 2**30  # S3's limit for one PUT; larger files go through the server (multipart)
UPLOADS_DIR = ".uploads"  # local backend: where an upload is written before it is renamed into place


def check_name(value: str, field: str) -> str:
    """A project name or run id: one path part, as a key prefix may hold it."""
    if not value or "/" in value or "\\" in value or value.startswith(".") or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgumentError(field, f"{value!r:.80} is not a {field}")
    return value


@dataclass(frozen=True)
class PresignedRequest:
    """An HTTP request a client may make without the server: ``method url`` with ``headers``."""

    method: str
    url: str
    headers: dict[str, str]
    expires_in: int


class ObjectStore:
    """Runs' files at one location; every path is checked before it reaches the backend."""

    def __init__(self, artifacts: Artifacts, *, presign: bool = True, presign_expires: int = 3600) -> None:
        self.artifacts = artifacts
        self.presign = presign
        self.presign_expires = presign_expires

    @classmethod
    def open(cls, location: str | os.PathLike[str], storage_options: Mapping[str, Any] | None = None, *,
             presign: bool = True) -> "ObjectStore":
        """The store at a local directory or an fsspec URL (``s3://bucket/prefix``).

        ``presign=False`` sends every upload through the server (for an object store the
        clients cannot reach).

        An S3-compatible endpoint (minio, moto) comes from ``storage_options``
        (``{"client_kwargs": {"endpoint_url": ...}}``), ``$FSSPEC_S3_ENDPOINT_URL`` or ``$AWS_ENDPOINT_URL``.
        """
        return cls(open_artifacts(location, storage_options), presign=presign)

    def __repr__(self) -> str:
        return f"ObjectStore({self.artifacts.url!r})"

    def parts(self, project: str, run_id: str, path: str | None = None) -> tuple[str, ...]:
        """The checked path parts of a run's file (or of the run, with ``path`` None)."""
        base = (check_name(project, "project"), check_name(run_id, "run id"))
        return base if path is None else (*base, check_relative_path(path, "path"))

    def writer(self, project: str, run_id: str, path: str) -> FileSink:
        """A new version of a run's file: readers see the old one (or none) until ``close``;
        ``abort`` leaves nothing behind."""
        parts = self.parts(project, run_id, path)
        if not self.artifacts.is_local:
            return self.artifacts.open_write(*parts)  # an object appears when its upload completes
        return _LocalUpload(self.artifacts, "/".join(parts))

    def open_read(self, project: str, run_id: str, path: str) -> BinaryIO:
        """A seekable stream of a run's file; FileNotFoundError (or NotRegularFileError, locally) if none."""
        return self.artifacts.open_read(*self.parts(project, run_id, path))

    def size(self, project: str, run_id: str, path: str) -> int:
        return self.artifacts.size(*self.parts(project, run_id, path))

    def list(self, project: str, run_id: str, prefix: str = "") -> list[tuple[str, int]]:
        """(path, size) of the run's files whose path starts with ``prefix``, sorted."""
        folder = prefix.rpartition("/")[0]
        base = self.parts(project, run_id, folder or None)
        entries = self.artifacts.list_files(*base)
        return [(f"{folder}/{name}" if folder else name, size) for name, size in entries
                if (f"{folder}/{name}" if folder else name).startswith(prefix)]

    def delete_prefix(self, project: str, run_id: str, prefix: str) -> int:
        """Remove the run's files under ``prefix``: manifests first, so no checkpoint is ever
        visible with files missing. The number removed."""
        if not prefix:
            raise InvalidArgumentError("prefix", "name what to delete (delete_run removes a whole run)")
        files = self.list(project, run_id, prefix)
        files.sort(key=lambda entry: (not entry[0].endswith("/manifest.json") and entry[0] != "manifest.json", entry[0]))
        for path, _ in files:
            self.artifacts.remove_file(*self.parts(project, run_id, path))
        return len(files)

    def run_files(self, run: RunRecord) -> RunFiles:
        """The run's files as the dashboard reads them: ``<project>/<run id>/``, whatever ``dir`` the run records."""
        return RunFiles(self.artifacts, "/".join(self.parts(run.project, run.id)))

    def delete_run(self, project: str, run_id: str) -> None:
        """Every file of the run."""
        self.artifacts.remove_tree(*self.parts(project, run_id))

    def presign_put(self, project: str, run_id: str, path: str, *, size: int, xxh3: str | None = None) -> PresignedRequest | None:
        """A PUT the client sends straight to the object store; None where the backend cannot sign one."""
        fs = self._s3()
        if fs is None or not 0 <= size <= MAX_PRESIGNED_PUT:
            return None
        params: dict[str, Any] = {"ContentLength": size}
        headers = {"content-length": str(size)}
        if xxh3:
            params["Metadata"] = {"xxh3": xxh3}  # signed: the object records the hash the client claimed
            headers["x-amz-meta-xxh3"] = xxh3
        url = fs.url(self._key(project, run_id, path), expires=self.presign_expires, client_method="put_object", **params)
        return PresignedRequest("PUT", url, headers, self.presign_expires)

    def presign_get(self, project: str, run_id: str, path: str) -> PresignedRequest | None:
        """A GET the client sends straight to the object store; None where the backend cannot sign one."""
        fs = self._s3()
        if fs is None:
            return None
        url = fs.url(self._key(project, run_id, path), expires=self.presign_expires)
        return PresignedRequest("GET", url, {}, self.presign_expires)

    def _key(self, project: str, run_id: str, path: str) -> str:
        return self.artifacts.path(*self.parts(project, run_id, path))

    def _s3(self) -> Any:
        if not self.presign:
            return None
        fs = getattr(self.artifacts, "fs", None)
        protocol = getattr(fs, "protocol", ())
        protocols = (protocol,) if isinstance(protocol, str) else tuple(protocol)
        return fs if fs is not None and ("s3" in protocols or "s3a" in protocols) else None


class _LocalUpload:
    """A file written under ``.uploads/`` and renamed into place at ``close``."""

    def __init__(self, artifacts: Artifacts, target: str) -> None:
        _refuse_links(artifacts.root, target)  # before the body arrives; checked again at close
        self._artifacts = artifacts
        self._target = target
        artifacts.makedirs(UPLOADS_DIR)
        self._temp = f"{UPLOADS_DIR}/{uuid.uuid4().hex}"
        self._sink = artifacts.open_write(self._temp)

    def write(self, data: Any) -> None:
        self._sink.write(data)

    def close(self) -> None:
        try:
            self._sink.close()
            _refuse_links(self._artifacts.root, self._target)
            self._artifacts.makedirs(self._target.rpartition("/")[0])
            self._artifacts.rename(self._temp, self._target)
        except BaseException:
            self._artifacts.remove_file(self._temp)
            raise
        self._artifacts.sync_dir(self._target.rpartition("/")[0])

    def abort(self) -> None:
        self._sink.abort()
        self._artifacts.remove_file(self._temp)


def _refuse_links(root: str, target: str) -> None:
    """InvalidArgumentError when a folder on the way to ``target`` is a symbolic link: a rename
    would follow it out of the location."""
    folder = root
    for name in target.split("/")[:-1]:
        folder = os.path.join(folder, name)
        if os.path.islink(folder):
            raise InvalidArgumentError("path", f"{target!r} passes through a symbolic link")
