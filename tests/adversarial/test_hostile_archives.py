"""Hostile run archives: bad manifests, huge manifests, gzip bombs and "live" runs are refused or defused.

Each import that fails leaves nothing in the root; one that succeeds never brings a
process to signal with it.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import sqlite3
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

import runpoint as rp
from runpoint.errors import ArchiveError
from runpoint.query import archive
from runpoint.store import RunStatus
from runpoint.store.sqlite import SQLiteStore

from ..conftest import cli
from ..dashboard_fixtures import running_server


@pytest.fixture
def exported(root: Path, tmp_path: Path) -> Path:
    """A finished run exported as an uncompressed archive."""
    with rp.init(project="p", id="arc1", config={"lr": 0.1}, root=root, console=False, system_metrics=False) as run:
        run.log({"loss": 1.0}, step=0)
    with SQLiteStore(root / "runpoint.db") as store:
        return archive.export_archive(store, store.get_run("arc1"), tmp_path / "arc1.tar")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:*") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _repack(
    source: Path, out: Path, *, replace: dict[str, bytes] | None = None,
    edit: Callable[[dict[str, Any]], Any] | None = None, raw: dict[str, tuple[int, io.RawIOBase]] | None = None,
) -> Path:
    """A copy of ``source`` with members replaced (hashes and sizes recomputed), the manifest
    edited by ``edit``, and ``raw`` members (size, stream) written unhashed before the manifest."""
    members = _members(source)
    manifest = json.loads(members.pop(archive.MANIFEST))
    members.update(replace or {})
    manifest["files"] = {name: hashlib.sha256(data).hexdigest() for name, data in members.items()}
    manifest["sizes"] = {name: len(data) for name, data in members.items()}
    if edit is not None:
        manifest = edit(manifest) or manifest
    with tarfile.open(out, "w:gz" if out.name.endswith(".gz") else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, (size, stream) in (raw or {}).items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, stream)
        data = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        info = tarfile.TarInfo(archive.MANIFEST)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out


def _left_in(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if not p.name.startswith("runpoint.db")) if root.exists() else []


def _import(path: Path, other: Path) -> None:
    with SQLiteStore(other / "runpoint.db") as store:
        archive.import_archive(path, store)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(manifest: dict[str, Any]) -> None:
        target, _, field = key.rpartition(".")
        (manifest[target] if target else manifest)[field] = value
    return edit


def test_a_manifest_run_that_is_a_string_is_refused_in_one_line(exported: Path, tmp_path: Path) -> None:
    bad = _repack(exported, tmp_path / "bad.tar", edit=_set("run", "arc1"))
    other = tmp_path / "other"
    result = cli(other, "import", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "'run' must be an object" in result.stderr, result.stderr
    assert _left_in(other) == []


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("run", None, "'run' must be an object"),
    ("run.id", 7, "'run' must be an object"),
    ("run.status", ["running"], "'run.status'"),
    ("format_version", "1", "'format_version'"),
    ("files", ["run.db"], "'files' must map"),
    ("sizes", {"run.db": -1}, "'sizes' must give"),
    ("sizes.run.db", "12", "'sizes' must give"),
])
def test_a_manifest_of_the_wrong_shape_is_refused(exported: Path, tmp_path: Path, key: str, value: Any, fragment: str) -> None:
    if key == "sizes.run.db":
        edit: Callable[[dict[str, Any]], None] = lambda manifest: manifest["sizes"].__setitem__("run.db", value)  # noqa: E731
    else:
        edit = _set(key, value)
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match="damaged manifest: ") as caught:
        _import(_repack(exported, tmp_path / "bad.tar", edit=edit), other)
    assert fragment in str(caught.value)
    assert _left_in(other) == []


def test_a_huge_manifest_is_refused_before_it_is_parsed(exported: Path, tmp_path: Path) -> None:
    def pad(manifest: dict[str, Any]) -> bytes:  # valid JSON, one byte over the limit, tiny once compressed
        text = json.dumps(manifest).encode()
        return text + b" " * (archive.MAX_MANIFEST_BYTES + 1 - len(text))

    huge = _repack(exported, tmp_path / "huge.tar.gz", edit=pad)
    assert huge.stat().st_size < 200_000
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match=f"over the limit of {archive.MAX_MANIFEST_BYTES:,}"):
        _import(huge, other)
    assert _left_in(other) == []


class _Zeros(io.RawIOBase):
    """``size`` zero bytes, made on the fly: a gzip bomb's payload without the memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def test_a_gzip_bomb_member_is_refused_before_a_byte_is_written(exported: Path, tmp_path: Path) -> None:
    declared = 64 << 20

    def list_small(manifest: dict[str, Any]) -> None:
        manifest["files"]["run/bomb.bin"] = hashlib.sha256(b"tiny").hexdigest()
        manifest["sizes"]["run/bomb.bin"] = 4

    bomb = _repack(exported, tmp_path / "bomb.tar.gz", edit=list_small, raw={"run/bomb.bin": (declared, _Zeros(declared))})
    assert bomb.stat().st_size < 1 << 20
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match="'run/bomb.bin' is damaged \\(67,108,864 bytes, the manifest says 4\\)"):
        _import(bomb, other)
    assert _left_in(other) == []


def test_an_archive_without_sizes_still_imports_and_a_bad_member_stops_it(exported: Path, tmp_path: Path) -> None:
    def without_sizes(manifest: dict[str, Any]) -> None:
        del manifest["sizes"]

    old = _repack(exported, tmp_path / "old.tar", edit=without_sizes)
    other = tmp_path / "other"
    _import(old, other)
    with SQLiteStore(other / "runpoint.db") as store:
        assert store.get_run("arc1").status is RunStatus.COMPLETED
    damaged = _repack(exported, tmp_path / "damaged.tar", edit=lambda m: m["files"].__setitem__("run.db", "0" * 64))
    third = tmp_path / "third"
    with pytest.raises(ArchiveError, match="'run.db' is damaged \\(its SHA-256"):
        _import(damaged, third)
    assert _left_in(third) == []


def _as_running(exported: Path, tmp_path: Path, pid: int) -> Path:
    members = _members(exported)
    db = tmp_path / "run.db"
    db.write_bytes(members["run.db"])
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET status = 'running', host = ?, pid = ?, heartbeat_at = ?, ended_at = NULL",
                     (socket.gethostname(), pid, time.time() + 3600))
    conn.close()
    return _repack(exported, tmp_path / "live.tar", replace={"run.db": db.read_bytes()},
                   edit=_set("run.status", "running"))


def test_an_archived_running_run_arrives_ended_and_stop_never_signals_a_local_process(exported: Path, tmp_path: Path) -> None:
    child = subprocess.Popen(["sleep", "60"])
    try:
        live = _as_running(exported, tmp_path, child.pid)
        other = tmp_path / "other"
        result = cli(other, "import", str(live))
        assert result.returncode == 0, result.stderr
        with SQLiteStore(other / "runpoint.db") as store:
            record = store.get_run("arc1")
            meta = store.get_meta("arc1")
        assert record.status is RunStatus.CRASHED and record.ended_at is not None
        assert (record.host, record.pid) == (None, None) and "imported from an archive" in (record.error or "")
        assert meta["imported"]["status"] == "running" and meta["imported"]["pid"] == child.pid
        with running_server(other) as server, httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as client:
            stop = client.post("/api/runs/arc1/stop", json={"force": True})
        assert 400 <= stop.status_code < 500 and "not running" in stop.text, stop.text
        time.sleep(0.2)
        assert child.poll() is None  # the sleep lives on
    finally:
        child.kill()
        child.wait()


def test_an_archive_with_a_bombed_config_is_refused(exported: Path, tmp_path: Path) -> None:
    bomb = "\n".join(["a0: &a0 [" + ", ".join(["1"] * 9) + "]"]
                     + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]) + "\n"
    bad = _repack(exported, tmp_path / "bomb.tar", replace={"run/config.yaml": bomb.encode()})
    other = tmp_path / "other"
    with pytest.raises(ArchiveError, match="refusing the run's config.yaml: .*once its aliases"):
        _import(bad, other)
    assert _left_in(other) == []
