"""`runpoint export RUN --archive` and `runpoint import`: a run moves between roots bit for bit."""

from __future__ import annotations

import io
import json
import math
import os
import sqlite3
import struct
import tarfile
import time
import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

import runpoint as rp
from runpoint import query
from runpoint.query import archive
from runpoint.store.sqlite import SQLiteStore
from runpoint.store.sqlite.transfer import RUN_TABLES

from .conftest import cli, run_script

ODD_VALUES = [math.nan, -0.0, math.inf, -math.inf, 5e-324, 1.7976931348623157e308, 0.1 + 0.2]


@pytest.fixture
def source(root, tmp_path) -> Path:
    """A finished, resumed run with every kind of data, and a checkpoint on disk and in the registry."""
    code = """
        import math, numpy as np, runpoint as rp
        nan, inf = float("nan"), float("inf")
        with rp.init(project="p", id="src1", name="source", config={"lr": 0.1, "token": "hidden"}, tags=["t1"],
                     notes="n", group="g", system_metrics=False) as run:
            for step in range(12_000):  # several metric chunks
                run.log({"train/loss": 1.0 / (step + 1)}, step=step)
            for step, value in enumerate(%r):
                run.log({"odd": value}, step=step)
            run.log({"img": rp.Image(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)), "t": rp.Text("hello"),
                     "tab": rp.Table([[1, math.nan]], columns=["a", "b"]), "h": rp.Histogram(np.arange(10.0))}, step=7)
            run.summary["best/acc"] = 0.5
            print("first attempt")
        with rp.init(project="p", resume="src1", system_metrics=False) as run:
            run.log({"train/loss": 0.5}, step=12_000)
            print("second attempt")
    """ % (ODD_VALUES,)
    result = run_script(tmp_path, root, code)
    assert result.returncode == 0, result.stderr
    checkpoint = root / "p" / "src1" / "checkpoints" / "step-000100"
    checkpoint.mkdir(parents=True)
    (checkpoint / "model.safetensors").write_bytes(os.urandom(70_000))
    (checkpoint / "manifest.json").write_text(json.dumps({"step": 100}))
    (root / "p" / "src1" / "checkpoints" / "latest").write_text("step-000100\n")
    with sqlite3.connect(root / "runpoint.db") as conn:
        conn.execute(
            "INSERT INTO checkpoints (run_id, step, path, bytes, metrics, is_best, hash, created_at, deleted_at)"
            " VALUES ('src1', 100, 'checkpoints/step-000100', 70000, '{\"val/loss\": 0.25}', 1, 'xyz', ?, NULL)",
            (time.time(),),
        )
    return root


def _rows(db: Path, run_id: str) -> dict[str, list[tuple]]:
    with sqlite3.connect(db) as conn:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (run_id,)).fetchall(), key=repr)
            for table, column in RUN_TABLES
        }


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_a_run_moves_to_another_root_bit_for_bit(source, tmp_path) -> None:
    out = tmp_path / "src1.tar.gz"
    exported = cli(source, "export", "src1", "--archive", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    other = tmp_path / "other"
    imported = cli(other, "import", str(out), "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["id"] == "src1"
    before, after = _rows(source / "runpoint.db", "src1"), _rows(other / "runpoint.db", "src1")
    assert before == after  # every row of every table, metric blobs and JSON included
    assert len(before["metric_chunks"]) > 2 and len(before["media"]) == 4 and len(before["checkpoints"]) == 1
    assert _files(source / "p" / "src1") == _files(other / "p" / "src1")
    with SQLiteStore(source / "runpoint.db") as a, SQLiteStore(other / "runpoint.db") as b:
        for key in a.metric_keys("src1"):
            assert a.read_metric("src1", key) == b.read_metric("src1", key)  # MetricSeries compares bits
        odd = b.read_metric("src1", "odd").values
        assert [struct.pack("<d", v) for v in odd] == [struct.pack("<d", v) for v in ODD_VALUES]
        assert b.get_run("src1") == a.get_run("src1")
        assert b.get_params("src1") == {"lr": 0.1, "token": "********"}
        assert b.get_summary("src1") == a.get_summary("src1")
        assert query.read_media(b, "src1", "tab")[0].data["rows"][0][0] == 1
    assert (other / "p" / "src1" / "logs" / "console_resume_1.log").read_text().strip() == "second attempt"
    shown = cli(other, "show", "src1", "--json")
    assert json.loads(shown.stdout)["run"]["resume_count"] == 1


def test_an_imported_run_can_be_resumed_and_extended(source, tmp_path) -> None:
    out = tmp_path / "run.tar"
    assert cli(source, "export", "src1", "--archive", "--out", str(out)).returncode == 0
    assert not _is_gzip(out)
    other = tmp_path / "other"
    assert cli(other, "import", str(out)).returncode == 0
    with rp.init(project="p", resume="src1", root=other, console=False, system_metrics=False) as run:
        assert run.step == 12_001
        run.log({"train/loss": 0.25})
    with SQLiteStore(other / "runpoint.db") as store:
        assert store.read_metric("src1", "train/loss").values[-2:].tolist() == [0.5, 0.25]


def _is_gzip(path: Path) -> bool:
    return path.read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_import_into_another_project_and_twice_into_one_root(source, tmp_path) -> None:
    out = tmp_path / "a.tgz"
    assert cli(source, "export", "src1", "--archive", "--out", str(out)).returncode == 0
    assert _is_gzip(out)
    other = tmp_path / "other"
    assert cli(other, "import", str(out), "--project", "moved").returncode == 0
    with SQLiteStore(other / "runpoint.db") as store:
        record = store.get_run("src1")
        assert (record.project, record.dir) == ("moved", "moved/src1")
    assert (other / "moved" / "src1" / "checkpoints" / "latest").read_text() == "step-000100\n"
    again = cli(other, "import", str(out))
    assert again.returncode == 1 and "is in" in again.stderr and "already" in again.stderr
    same_root = cli(source, "import", str(out))
    assert same_root.returncode == 1 and "already" in same_root.stderr
    assert not [p for p in other.iterdir() if p.name.startswith(".runpoint-import")]


def _rewrite(archive_path: Path, target: Path, change) -> None:
    """Copy an archive member by member, letting ``change(name, data)`` return new bytes (or None to drop)."""
    with tarfile.open(archive_path, "r:*") as tar, tarfile.open(target, "w") as out:
        for member in tar:
            data = tar.extractfile(member).read() if member.isfile() else None
            new = change(member.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(member.name if not isinstance(new, tuple) else new[0])
            payload = new if not isinstance(new, tuple) else new[1]
            info.size = len(payload)
            out.addfile(info, io.BytesIO(payload))


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_a_damaged_or_unsafe_archive_is_refused_and_leaves_nothing_behind(source, tmp_path) -> None:
    good = tmp_path / "good.tar"
    assert cli(source, "export", "src1", "--archive", "--out", str(good)).returncode == 0
    damaged = tmp_path / "damaged.tar"
    _rewrite(good, damaged, lambda name, data: data.replace(b"0.1", b"0.2") if name == "run/config.yaml" else data)
    unsafe = tmp_path / "unsafe.tar"

    def escape(name, data):
        if name == archive.MANIFEST:
            manifest = json.loads(data)
            manifest["files"]["run/../../evil.txt"] = manifest["files"].pop("run/config.yaml")
            manifest["sizes"]["run/../../evil.txt"] = manifest["sizes"].pop("run/config.yaml")
            return json.dumps(manifest).encode()
        return ("run/../../evil.txt", data) if name == "run/config.yaml" else data

    _rewrite(good, unsafe, escape)
    linked = tmp_path / "linked.tar"
    _rewrite(good, linked, lambda name, data: data)
    with tarfile.open(linked, "a") as tar:  # a link inside the run that points at the store once moved
        link = tarfile.TarInfo("run/media/other")
        link.type, link.linkname = tarfile.SYMTYPE, "../../runpoint.db"
        tar.addfile(link)
    truncated = tmp_path / "truncated.tar"
    _rewrite(good, truncated, lambda name, data: None if name == archive.MANIFEST else data)
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(os.urandom(1000))
    other = tmp_path / "other"
    for path, fragment in ((damaged, "damaged"), (unsafe, "unsafe member"), (linked, "not a regular file"), (truncated, "not a runpoint archive"),
                           (garbage, "cannot read the archive")):
        result = cli(other, "import", str(path))
        assert result.returncode == 1 and fragment in result.stderr, (path, result.stderr)
    assert not (tmp_path / "evil.txt").exists() and not (other.parent / "evil.txt").exists()
    assert all(p.name.startswith("runpoint.db") for p in other.iterdir())  # no run directory, no scratch
    with SQLiteStore(other / "runpoint.db") as store:
        assert store.count_runs() == 0


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_export_refuses_a_live_run_and_bad_names(root, tmp_path) -> None:
    run = rp.init(project="p", id="live", root=root, console=False, system_metrics=False)
    try:
        result = cli(root, "export", "live", "--archive", "--out", str(tmp_path / "x.tar.gz"))
        assert result.returncode == 1 and "still running" in result.stderr
    finally:
        run.finish()
    bad = cli(root, "export", "live", "--archive", "--out", str(tmp_path / "x.zip"))
    assert bad.returncode == 1 and "ends in .tar" in bad.stderr
    default = cli(root, "export", "live", "--archive", cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "live.tar.gz").is_file()


def test_import_hands_tensorboard_and_mlflow_to_their_importers(root, monkeypatch, tmp_path) -> None:
    from runpoint.cli.main import app

    calls = []
    fake = types.ModuleType("runpoint.importers.tensorboard")
    fake.import_runs = lambda location, root, project: calls.append((location, root, project)) or ["r1", "r2"]
    monkeypatch.setitem(__import__("sys").modules, "runpoint.importers.tensorboard", fake)
    monkeypatch.setitem(__import__("sys").modules, "runpoint.importers.mlflow", None)
    runner = CliRunner()
    result = runner.invoke(app, ["import", "tensorboard", str(tmp_path / "tb"), "--root", str(root), "--project", "x", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"] == ["r1", "r2"]
    assert calls == [(str(tmp_path / "tb"), root, "x")]
    missing = runner.invoke(app, ["import", "mlflow", "./mlruns", "--root", str(root)])
    assert missing.exit_code == 1 and "runpoint.importers.mlflow" in missing.output
    no_location = runner.invoke(app, ["import", "tensorboard", "--root", str(root)])
    assert no_location.exit_code == 2 and "give the tensorboard location" in no_location.output
    not_a_file = runner.invoke(app, ["import", str(tmp_path / "nope.tar.gz"), "--root", str(root)])
    assert not_a_file.exit_code == 1 and "no such archive" in not_a_file.output


def test_the_archive_lists_every_file_with_its_hash(source, tmp_path) -> None:
    out = tmp_path / "a.tar.gz"
    assert cli(source, "export", "src1", "--archive", "--out", str(out)).returncode == 0
    manifest = archive.read_manifest(out)
    assert manifest["run"] == {"id": "src1", "project": "p", "name": "source", "status": "completed"}
    assert manifest["rows"]["metric_chunks"] > 2 and manifest["rows"]["checkpoints"] == 1
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names[-1] == archive.MANIFEST and set(names[:-1]) == set(manifest["files"])
    assert {"run.db", "run/config.yaml", "run/meta.json", "run/logs/console.log", "run/media/img/0000000007.png",
            "run/checkpoints/step-000100/model.safetensors", "run/checkpoints/latest"} <= set(names)
    assert all(len(digest) == 64 for digest in manifest["files"].values())
