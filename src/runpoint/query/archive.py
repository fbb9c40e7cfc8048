"""Portable runs: one file that carries a run from one root to another, losslessly.

An archive is a tar file (gzip-compressed when its name ends in ``.gz``/``.tgz``)::

    run.db                    the run's rows: record, tags, params, summary, metric
                              chunks and stats, checkpoint registry, media (SQLite, same schema)
    run/...                   the run directory: config.yaml, meta.json, logs/, media/, checkpoints/
    runpoint-archive.json     written last: format version, the run, and the SHA-256 and
                              size of every file

Exporting reads the database in one snapshot and streams the files into the tar, hashing
them on the way. Importing extracts into a temporary directory inside the target root
(tar's ``data`` filter: no absolute paths, no links out, no devices), streaming each
file and checking it against the manifest as it goes: a file larger than the manifest
says, or than the free disk space, stops the import before it is written, a wrong hash
right after. It refuses a run id the root already has, then moves the directory into
place and inserts the rows in one transaction; if anything fails, nothing is left in
the root. Metric values arrive bit for bit. A run the archive records as ``running``
arrives as ``crashed``, with no pid to signal (the original status is in its meta).

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
import zlib
from pathlib import Path
from typing import IO, Any

from .._util.fs import atomic_path, require_parent_dir
from .._version import __version__
from ..artifacts.paths import RunPaths
from ..errors import ArchiveError, InvalidArgumentError, RunExistsError
from ..run.liveness import run_is_dead
from ..store import RunRecord, RunStatus, Store
from ..store.sqlite.schema import SCHEMA_VERSION
from .runs import run_dir as query_run_dir

FORMAT = "runpoint-archive"
FORMAT_VERSION = 1
MANIFEST = "runpoint-archive.json"
DB_MEMBER = "run.db"
RUN_PREFIX = "run/"
SUFFIXES = (".tar", ".tar.gz", ".tgz")
MAX_MANIFEST_BYTES = 16 << 20
"""Largest manifest read (16 MiB, some 150 000 files); read before anything is extracted."""
MAX_MEMBERS = 500_000
"""Most members an archive may have: each costs memory while the tar is read."""
_CHUNK = 1 << 20


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
    from ..store.sqlite.store import SQLiteStore

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
    from ..store.sqlite.transfer import export_run_db

    if run.status is RunStatus.RUNNING and run_is_dead(store, run) is None:
        raise InvalidArgumentError("run", f"run {run.id} is still running; export it once it has finished")
    path = Path(out) if out is not None else Path(f"{run.id}.tar.gz")
    if path.is_dir():
        path = path / f"{run.id}.tar.gz"
    if not path.name.endswith(SUFFIXES):
        raise InvalidArgumentError("out", f"{path.name!r}: an archive's name ends in {', '.join(SUFFIXES)}")
    require_parent_dir(path)
    run_dir = query_run_dir(store, run)
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix=".runpoint-export-", dir=path.parent) as scratch:
        db_path = Path(scratch) / DB_MEMBER
        counts = export_run_db(sqlite_store, run.id, db_path)
        with atomic_path(path) as tmp, tarfile.open(tmp, "w:gz" if _compressed(path) else "w", format=tarfile.PAX_FORMAT) as tar:
            _add_file(tar, db_path, DB_MEMBER, hashes, sizes)
            for file in _run_files(run_dir) if run_dir.is_dir() else []:
                _add_file(tar, file, RUN_PREFIX + file.relative_to(run_dir).as_posix(), hashes, sizes)
            manifest = {
                "format": FORMAT, "format_version": FORMAT_VERSION, "schema_version": SCHEMA_VERSION,
                "runpoint": __version__, "created_at": time.time(),
                "run": {"id": run.id, "project": run.project, "name": run.name, "status": run.status.value},
                "rows": counts, "files": hashes, "sizes": sizes,
            }
            data = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _add_file(tar: tarfile.TarFile, source: Path, name: str, hashes: dict[str, str], sizes: dict[str, int]) -> None:
    info = tar.gettarinfo(str(source), arcname=name)
    sizes[name] = info.size
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    with open(source, "rb") as handle:
        reader = _HashingReader(handle)
        tar.addfile(info, reader)  # type: ignore[arg-type]
    hashes[name] = reader.digest.hexdigest()


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of an archive, checked for format, version and shape.

    Raises :class:`ArchiveError` for a manifest over :data:`MAX_MANIFEST_BYTES`, an archive
    over :data:`MAX_MEMBERS` members, and a manifest whose fields have the wrong types.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            manifest = _find_manifest(path, tar)
    except FileNotFoundError:
        raise ArchiveError(path, "no such file") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(path, f"cannot read the archive: {exc}") from None
    _check_manifest(path, manifest)
    return manifest


def _find_manifest(path: str | os.PathLike[str], tar: tarfile.TarFile) -> Any:
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise ArchiveError(path, f"refused: more than {MAX_MEMBERS:,} members (the limit)")
        if member.name != MANIFEST:
            continue
        if not member.isfile():
            raise ArchiveError(path, f"refusing {MANIFEST!r}: not a regular file")
        if member.size > MAX_MANIFEST_BYTES:
            raise ArchiveError(path, f"refused: its manifest is {member.size:,} bytes, over the limit of "
                                     f"{MAX_MANIFEST_BYTES:,}")
        handle = tar.extractfile(member)
        data = handle.read() if handle is not None else b""
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            raise ArchiveError(path, f"not a runpoint archive ({MANIFEST} is not valid JSON)") from None
    raise ArchiveError(path, f"not a runpoint archive (no {MANIFEST}; was the export interrupted?)")


def _check_manifest(path: str | os.PathLike[str], manifest: Any) -> None:
    def bad(what: str) -> ArchiveError:
        return ArchiveError(path, f"damaged manifest: {what}")

    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(path, "not a runpoint archive")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise bad("'format_version' must be a number")
    if version > FORMAT_VERSION:
        raise ArchiveError(path, f"written by a newer runpoint (archive format {version}); upgrade")
    run = manifest.get("run")
    if not isinstance(run, dict) or not all(isinstance(run.get(key), str) for key in ("id", "project")):
        raise bad(f"'run' must be an object with the run's 'id' and 'project' as strings, not {_shape(run)}")
    if not all(isinstance(run.get(key, ""), str) for key in ("name", "status")):
        raise bad("'run.name' and 'run.status' must be strings")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(_is_sha256(digest) for digest in files.values()):
        raise bad("'files' must map each file to its SHA-256 (64 hex digits)")
    sizes = manifest.get("sizes")  # archives before sizes were recorded have none
    if sizes is not None and (not isinstance(sizes, dict) or set(sizes) != set(files) or not all(
            isinstance(size, int) and not isinstance(size, bool) and size >= 0 for size in sizes.values())):
        raise bad("'sizes' must give the size in bytes of every file in 'files'")


def _shape(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null"}.get(type(value), type(value).__name__)


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def _extract(path: Path, manifest: dict[str, Any], scratch: Path) -> None:
    """Stream every member into ``scratch``, each checked before and while it is written."""
    expected: dict[str, str] = manifest["files"]
    sizes: dict[str, int] | None = manifest.get("sizes")
    budget = shutil.disk_usage(scratch).free  # the global cap: what fits on the disk
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                budget = _extract_member(path, tar, member, expected, sizes, scratch, budget)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(path, f"cannot read the archive: {exc}") from None
    for name in expected:
        if not (scratch / name).is_file():
            raise ArchiveError(path, f"{name!r} is listed in the manifest but missing")


def _extract_member(
    path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, expected: dict[str, str],
    sizes: dict[str, int] | None, scratch: Path, budget: int,
) -> int:
    """Check one member against the manifest and the space left, write it; returns the space left."""
    name = member.name
    if name == MANIFEST or member.isdir():
        return budget
    if not member.isfile():  # export writes only regular files; a link could point anywhere once moved
        raise ArchiveError(path, f"refusing {name!r}: not a regular file")
    if name != DB_MEMBER and not name.startswith(RUN_PREFIX):
        raise ArchiveError(path, f"unexpected member {name!r}")
    if name not in expected:
        raise ArchiveError(path, f"{name!r} is not listed in the manifest")
    if sizes is not None and member.size != sizes[name]:
        raise ArchiveError(path, f"{name!r} is damaged ({member.size:,} bytes, the manifest says {sizes[name]:,})")
    if member.size > budget:
        raise ArchiveError(path, f"{name!r} ({member.size:,} bytes) does not fit in the free space of {scratch.parent}")
    budget -= member.size
    try:
        safe = tarfile.data_filter(member, str(scratch))
    except tarfile.FilterError as exc:
        raise ArchiveError(path, f"refusing unsafe member {name!r}: {exc}") from None
    _write_member(path, tar, member, scratch / safe.name, expected[name], safe.mode)
    return budget


def _write_member(
    path: Path, tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, digest: str, mode: int | None
) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise ArchiveError(path, f"refusing {member.name!r}: not a regular file")
    hashed, written = hashlib.sha256(), 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with source, open(target, "xb") as out:
            while block := source.read(_CHUNK):
                written += len(block)
                if written > member.size:  # tarfile stops at the size; this guards that promise
                    raise ArchiveError(path, f"{member.name!r} is longer than its header says")
                hashed.update(block)
                out.write(block)
        if mode is not None:
            os.chmod(target, mode & 0o777 | 0o600)
        os.utime(target, (member.mtime, member.mtime))
    except FileExistsError:
        raise ArchiveError(path, f"{member.name!r} appears twice") from None
    except OSError as exc:
        raise ArchiveError(path, f"cannot extract {member.name!r}: {exc}") from None
    if hashed.hexdigest() != digest:
        raise ArchiveError(path, f"{member.name!r} is damaged (its SHA-256 does not match the manifest)")


def _check_config(path: Path, run_dir: Path) -> None:
    """The run's config.yaml must read within the config limits (readers refuse it otherwise)."""
    from .._util.yaml import read_yaml_file
    from ..errors import ConfigError

    config = run_dir / "config.yaml"
    if config.is_file():
        try:
            read_yaml_file(config, "run/config.yaml")
        except ConfigError as exc:
            raise ArchiveError(path, f"refusing the run's config.yaml: {exc}") from None


def import_archive(
    path: str | os.PathLike[str], store: Store, *, project: str | None = None
) -> RunRecord:
    """Add the run in the archive at ``path`` to ``store``'s root; returns it as stored there.

    ``project`` files it under another project. Raises
    :class:`~runpoint.errors.RunExistsError` when the root has that run id already.
    """
    from .._util.ids import is_valid_identifier
    from ..store.sqlite.transfer import import_run_db, read_archived_run

    sqlite_store = _sqlite_store(store)
    archive = Path(path)
    if project is not None and not is_valid_identifier(project):
        raise InvalidArgumentError("project", f"{project!r} is not a valid project name")
    manifest = read_manifest(archive)
    run_id = manifest["run"]["id"]
    if not is_valid_identifier(run_id):
        raise ArchiveError(archive, "the manifest names no valid run id")
    root = Path(store.location).parent
    target_project = project or manifest["run"]["project"]
    if not is_valid_identifier(target_project):
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
        _check_config(archive, extracted)
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
    from ..errors import RunNotFoundError

    try:
        store.get_run(run_id)
    except RunNotFoundError:
        return False
    return True

