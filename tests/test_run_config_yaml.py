"""A run's config.yaml reads back exactly: strings that look like numbers or booleans stay strings.

Every writer of a run's config (rp.init, a resume with a new config, the importers, the
TensorBoard sink's config text) goes through one dumper that quotes such strings, so
``rp.load_config`` (YAML 1.2 rules) and ``yaml.safe_load`` (YAML 1.1) both get the same tree.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path

import pydantic
import pytest
import yaml

import runpoint as rp
from runpoint._util.yaml import parse_yaml
from runpoint.importers._common import ImportedRun, write_run
from runpoint.store import RunStatus
from runpoint.store.sqlite import SQLiteStore

TRICKY = {"a": {"b": "1e3", "c": "yes", "d": "0123", "e": "3.0", "f": "null", "g": 1e3, "h": True}}


class Inner(pydantic.BaseModel):
    b: str
    c: str
    d: str
    e: str
    f: str
    g: float
    h: bool


class Tricky(pydantic.BaseModel):
    a: Inner


def _reads_back(path: Path) -> None:
    assert rp.load_config(path, schema=Tricky, env={}).model_dump() == TRICKY
    assert yaml.safe_load(path.read_text()) == TRICKY


def test_a_run_config_yaml_keeps_strings_that_look_like_numbers(root: Path) -> None:
    with rp.init(project="yaml", config=TRICKY, root=root) as run:
        pass
    _reads_back(run.dir / "config.yaml")


def test_a_resume_with_another_config_writes_it_readable_too(root: Path) -> None:
    with rp.init(project="yaml", config={"a": {"b": "x"}}, root=root) as run:
        pass
    with rp.init(project="yaml", config=TRICKY, root=root, resume=run.id):
        pass
    _reads_back(run.dir / "config_resume_1.yaml")
    with rp.init(project="yaml", root=root, resume=run.id) as again:  # no config: the stored one comes back
        assert again.config == {"a": {"b": "x"}}


def test_an_imported_run_config_yaml_keeps_them_too(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    imported = ImportedRun(
        source="mlflow", source_id="abc", project="yaml", name="legacy", created_at=time.time() - 10,
        ended_at=time.time(), status=RunStatus.COMPLETED, config=TRICKY,
    )
    with SQLiteStore(root / "runpoint.db") as store:
        run_id = write_run(store, root, imported)
    assert run_id is not None
    _reads_back(root / "yaml" / run_id / "config.yaml")


def test_the_tensorboard_config_text_keeps_them_too(root: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with rp.init(project="yaml", config=TRICKY, root=root, sinks=["tensorboard"]) as run:
        run.log({"x": 1.0})
    acc = EventAccumulator(str(run.dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    text = textwrap.dedent(acc.Tensors("config")[0].tensor_proto.string_val[0].decode())
    assert parse_yaml(text, "config")[0] == TRICKY
