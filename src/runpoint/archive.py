"""Portable runs: one file that carries a run from one root to another, losslessly.

An archive is a tar file (gzip-compressed when its name ends in ``.gz``/``.tgz``)::

    run.db                    the run's rows: record, tags, params, summary, metric
                              chunks and stats, checkpoint registry, media (SQLite, same schema)
    run/...                   the run directory: config.yaml, meta.json, logs/, media/, checkpoints/
    runpoint-archive.json     written last: format version, the run, and the SHA-256 of every file

Exporting reads the database in one snapshot and streams the files into the tar, hashing
them on the way. Importing extracts into a temporary directory inside the target root
(tar's ``data`` filter: no absolute paths, no links out, no devices), checks every
file against the manifest, refuses a run id the root already has, then moves the
directory into place and inserts the rows in one transaction; if that fails, the
directory is removed again. Metric values arrive bit for bit.

Example::

    path = export_archive(store, run, "run.tar.gz")
    record = import_archive(path, root="/other/runpoint")
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from . import __version__
from ._fs import require_parent_dir
from ._liveness import is_dead
from ._paths import RunPaths
from .errors import ArchiveError, InvalidArgumentError, RunExistsError
from .store import RunRecord, RunStatus, Store
from .store._schema import SCHEMA_VERSION

FORMAT = "runpoint-archive"
FORMAT_VERSION = 1
MANIFEST = "runpoint-archive.json"
DB_MEMBER = "run.db"
RUN_PREFIX = "run/"
SUFFIXES = (".tar", ".tar.gz", ".tgz")


class _HashingReader:
    """Reads a file for tarfile while computing its SHA-256."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle = handle
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.digest.update(data)
        return data


def _sqlite_store(store: Store) -> Any:
    from .store.sqlite import SQLiteStore

    if not isinstance(store, SQLiteStore):
        raise InvalidArgumentError("root", "archives are made from and into local roots (SQLite stores)")
    return store


def _compressed(path: Path) -> bool:
    return path.name.endswith((".gz", ".tgz"))


def _run_files(run_dir: Path) -> list[Path]:
    """Regular files of the run directory, leaving out temporary files of atomic writes."""
    files = []
    for directory, subdirectories, names in os.walk(run_dir):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".tmp"))
        for name in sorted(names):
            path = Path(directory) / name
            if name.endswith(".tmp") or name.startswith(".tmp") or path.is_symlink() or not path.is_file():
                continue
            files.append(path)
    return files


def export_archive(store: Store, run: RunRecord, out: str | os.PathLike[str] | None = None) -> Path:
    """Write ``run`` into one archive file; returns its path (default ``<run id>.tar.gz``).

    A run that is still running is refused: its archive would miss what comes next.
    """
    sqlite_store = _sqlite_store(store)
    from .store.sqlite_transfer import export_run_db

    if run.status is RunStatus.RUNNING and not is_dead(run):
        raise InvalidArgumentError("run", f"run {run.id} is still running; export it once it has finished")
    path = Path(out) if out is not None else Path(f"{run.id}.tar.gz")
    if path.is_dir():
        path = path / f"{run.id}.tar.gz"
    if not path.name.endswith(SUFFIXES):
        raise InvalidArgumentError("out", f"{path.name!r}: an archive's name ends in {', '.join(SUFFIXES)}")
    require_parent_dir(path)
    run_dir = Path(store.location).parent / run.dir
    hashes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix=".runpoint-export-", dir=path.parent) as scratch:
        db_path = Path(scratch) / DB_MEMBER
        counts = export_run_db(sqlite_store, run.id, db_path)
        tmp = Path(scratch) / "archive.tmp"
        with tarfile.open(tmp, "w:gz" if _compressed(path) else "w", format=tarfile.PAX_FORMAT) as tar:
            _add_file(tar, db_path, DB_MEMBER, hashes)
            for file in _run_files(run_dir) if run_dir.is_dir() else []:
                _add_file(tar, file, RUN_PREFIX + file.relative_to(run_dir).as_posix(), hashes)
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION,
                "runpoint": __version__, "created_at": time.time(),
                "run": {"id": run.id, "project": run.project, "name": run.name, "status": run.status.value},
                "rows": counts, "files": hashes,
            }
            data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, path)
    return path


def _add_file(tar: tarfile.TarFile, source: Path, name: str, hashes: dict[str, str]) -> None:
    info = tar.gettarinfo(str(source), arcname=name)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(source, "rb") as handle:
        reader = _HashingReader(handle)
        tar.addfile(info, reader)  # type: ignore[arg-type]
    hashes[name] = reader.digest.hexdigest()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an archive, checked for format and version."""
    try:
        with tarfile.open(path, "r:*") as tar:
            member = tar.getmember(MANIFEST)
            handle = tar.extractfile(member)
            manifest = json.loads(handle.read()) if handle is not None else None
    except FileNotFoundError:
        raise ArchiveError(path, "no such file") from None
    except KeyError:
        raise ArchiveError(path, f"not a runpoint archive (no {MANIFEST}; was the export interrupted?)") from None
    except (tarfile.TarError, OSError, ValueError) as exc:
        raise ArchiveError(path, f"cannot read the archive: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(path, "not a runpoint archive")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise ArchiveError(path, f"written by a newer runpoint (archive format {manifest.get('format_version')}); upgrade")
    return manifest


def _extract(path: Path, manifest: dict[str, Any], scratch: Path) -> None:
    expected: dict[str, str] = manifest.get("files", {})
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            name = member.name
            if name == MANIFEST or member.isdir():
                continue
            if not member.isfile():  # export writes only regular files; a link could point anywhere once moved
                raise ArchiveError(path, f"refusing {name!r}: not a regular file")
            if name != DB_MEMBER and not name.startswith(RUN_PREFIX):
                raise ArchiveError(path, f"unexpected member {name!r}")
            if name not in expected:
                raise ArchiveError(path, f"{name!r} is not listed in the manifest")
            try:
                tar.extract(member, scratch, filter="data")
            except tarfile.FilterError as exc:
                raise ArchiveError(path, f"refusing unsafe member {name!r}: {exc}") from None
    for name, digest in expected.items():
        target = scratch / name
        if not target.is_file():
            raise ArchiveError(path, f"{name!r} is listed in the manifest but missing")
        if _sha256(target) != digest:
            raise ArchiveError(path, f"{name!r} is damaged (its SHA-256 does not match the manifest)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_archive(
    path: str | os.PathLike[str], store: Store, *, project: str | None = None
) -> RunRecord:
    """Add the run in the archive at ``path`` to ``store``'s root; returns it as stored there.

    ``project`` files it under another project. Raises
    :class:`~runpoint.errors.RunExistsError` when the root has that run id already.
    """
    from ._ids import is_valid_identifier
    from .store.sqlite_transfer import import_run_db, read_archived_run

    sqlite_store = _sqlite_store(store)
    archive = Path(path)
    if project is not None and not is_valid_identifier(project):
        raise InvalidArgumentError("project", f"{project!r} is not a valid project name")
    manifest = read_manifest(archive)
    run_id = manifest.get("run", {}).get("id")
    if not isinstance(run_id, str) or not is_valid_identifier(run_id):
        raise ArchiveError(archive, "the manifest names no valid run id")
    root = Path(store.location).parent
    target_project = project or manifest["run"].get("project")
    if not isinstance(target_project, str) or not is_valid_identifier(target_project):
        raise ArchiveError(archive, "the manifest names no valid project")
    paths = RunPaths(root, target_project, run_id)
    if paths.dir.exists() or _has_run(store, run_id):
        raise RunExistsError(run_id, paths.dir)
    with tempfile.TemporaryDirectory(prefix=".runpoint-import-", dir=root) as scratch_name:
        scratch = Path(scratch_name)
        _extract(archive, manifest, scratch)
        archived_id, _ = read_archived_run(scratch / DB_MEMBER)
        if archived_id != run_id:
            raise ArchiveError(archive, f"the manifest names run {run_id} but run.db holds {archived_id}")
        extracted = scratch / "run"
        extracted.mkdir(exist_ok=True)
        paths.dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            extracted.rename(paths.dir)
        except FileExistsError:
            raise RunExistsError(run_id, paths.dir) from None
        try:
            import_run_db(sqlite_store, scratch / DB_MEMBER, project=target_project)
        except BaseException:
            shutil.rmtree(paths.dir, ignore_errors=True)  # we put it there: leave nothing half-imported
            raise
    return store.get_run(run_id)


def _has_run(store: Store, run_id: str) -> bool:
    from .errors import RunNotFoundError

    try:
        store.get_run(run_id)
    except RunNotFoundError:
        return False
    return True

