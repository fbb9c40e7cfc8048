"""The README's bridge examples: the files run as written, and the README shows them unchanged."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from .conftest import REPO, run_script

EXAMPLES = REPO / "examples"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_readme_shows_the_bridge_examples_verbatim() -> None:
    blocks = _blocks()
    for name in ("mirror_runs.py", "import_runs.py", "optuna_sweep.py"):
        assert (EXAMPLES / name).read_text() in blocks, name


def test_readme_excerpts_are_lines_of_their_example_files() -> None:
    excerpts = [block for block in _blocks() if block.startswith("# from examples/")]
    assert len(excerpts) == 3
    for block in excerpts:
        first, *lines = block.splitlines()
        source = {line.strip() for line in (REPO / first.removeprefix("# from ")).read_text().splitlines()}
        assert [line for line in lines if line.strip() not in source] == [], first


@pytest.mark.slow  # three real bridges, ~12 s
def test_mirror_then_import(tmp_path: Path, _mlflow_db_template: Path) -> None:
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    shutil.copyfile(_mlflow_db_template, tmp_path / "mlflow.db")  # spares MLflow's first migration
    root = tmp_path / "runpoint"
    quiet = {"WANDB_SILENT": "true", "WANDB_API_KEY": "", "RUNPOINT_SINKS": ""}
    mirrored = run_script(tmp_path, root, (EXAMPLES / "mirror_runs.py").read_text(), **quiet)
    assert mirrored.returncode == 0, mirrored.stderr
    external = json.loads(mirrored.stdout[mirrored.stdout.index("{"):])
    assert {name: record["status"] for name, record in external.items()} == {
        "tensorboard": "finished", "mlflow": "finished", "wandb": "finished",
    }
    assert all(record["points_sent"] == 100 for record in external.values())

    imported = run_script(tmp_path, root, (EXAMPLES / "import_runs.py").read_text(), **quiet)
    assert imported.returncode == 0, imported.stderr
    with SQLiteStore(tmp_path / "imported" / "runpoint.db") as store:
        runs = {run.project: run for run in store.list_runs()}
        assert set(runs) == {"from-tb", "mirrored"} and all("imported" in run.tags for run in runs.values())
        for run in runs.values():
            assert len(store.read_metric(run.id, "train/loss")) == 100
            assert store.get_params(run.id)["optimizer.lr"] == 3e-4


def test_optuna_sweep(tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    root = tmp_path / "runpoint"
    result = run_script(tmp_path, root, (EXAMPLES / "optuna_sweep.py").read_text())
    assert result.returncode == 0, result.stderr
    with SQLiteStore(root / "runpoint.db") as store:
        runs = [run for run in store.list_runs() if run.group == "lr-sweep"]
        assert len(runs) == 5 and all(run.status is rp.RunStatus.COMPLETED for run in runs)
