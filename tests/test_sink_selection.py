"""Choosing sinks: rp.init(sinks=...), the config's experiment.sinks and $RUNPOINT_SINKS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.sinks import read_external
from runpoint.store.sqlite import SQLiteStore

from .test_sink_isolation import RecordingSink


@pytest.fixture(autouse=True)
def no_sinks_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNPOINT_SINKS", raising=False)


def _no_runs(root: Path) -> bool:
    if not (root / "runpoint.db").exists():
        return True
    with SQLiteStore(root / "runpoint.db") as store:
        return store.count_runs() == 0


def test_argument_config_and_environment_are_combined(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOINT_SINKS", "tensorboard")  # also named by the config: used once
    config = {"experiment": {"sinks": [{"tensorboard": {"logdir": str(root.parent / "tb")}}]}}
    sink = RecordingSink()
    with rp.init(project="sel", config=config, root=root, sinks=[sink]) as run:
        run.log({"x": 1.0})
    external = read_external(run.dir)
    assert set(external) == {"recording", "tensorboard"}
    assert sink.points == [("x", 0, 1.0)]
    # the config's options won over the environment's plain name
    assert Path(external["tensorboard"]["external"]["logdir"]).parent == root.parent / "tb" / "sel"


def test_environment_alone_turns_a_sink_on(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOINT_SINKS", "tensorboard")
    with rp.init(project="sel", root=root) as run:
        run.log({"x": 1.0})
    assert read_external(run.dir)["tensorboard"]["status"] == "finished"
    assert list((run.dir / "tensorboard").glob("events.out.tfevents.*"))


def test_environment_off_turns_every_sink_off(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNPOINT_SINKS", "off")
    sink = RecordingSink()
    with rp.init(project="sel", root=root, sinks=[sink], config={"experiment": {"sinks": ["tensorboard"]}}) as run:
        run.log({"x": 1.0})
    assert sink.started is None
    assert not (run.dir / "external.json").exists()


def test_a_run_without_sinks_has_no_external_json(root: Path) -> None:
    with rp.init(project="sel", root=root) as run:
        run.log({"x": 1.0})
    assert not (run.dir / "external.json").exists()


@pytest.mark.parametrize(
    ("sinks", "config", "message"),
    [
        (["tensorbored"], None, "sinks: unknown sink 'tensorbored'; the built-in sinks are tensorboard, mlflow, wandb"),
        ([{"mlflow": {"tracking_url": "x"}}], None, "sinks: mlflow: MLflowSink.__init__() got an unexpected keyword argument 'tracking_url'"),
        ([42], None, "sinks: 42 is not a sink"),
        (None, {"experiment": {"sinks": ["nope"]}}, "experiment.sinks: unknown sink 'nope'"),
        (None, {"experiment": {"sinks": 3}}, "experiment.sinks: expected a list of sinks, got int"),
    ],
)
def test_bad_sink_entries_fail_before_anything_is_created(root: Path, sinks, config, message) -> None:
    with pytest.raises(rp.InvalidArgumentError) as caught:
        rp.init(project="sel", root=root, sinks=sinks, config=config)
    assert str(caught.value).startswith(message)
    assert _no_runs(root) and not (root / "sel").exists()


def test_missing_package_names_the_extra_and_creates_nothing(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # what an environment without wandb looks like to import
    with pytest.raises(rp.MissingDependencyError) as caught:
        rp.init(project="sel", root=root, sinks=["wandb"])
    assert isinstance(caught.value, ImportError)
    assert caught.value.package == "wandb" and caught.value.extra == "wandb"
    assert str(caught.value) == (
        "the wandb sink needs the 'wandb' package, which is not installed; install it with: pip install 'runpoint[wandb]'"
    )
    assert _no_runs(root)


def test_importing_the_sinks_imports_none_of_the_tools() -> None:
    probe = (
        "import sys, json, runpoint.sinks; "
        "print(json.dumps(sorted(m for m in ('tensorboard', 'mlflow', 'wandb', 'torch', 'numpy') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_one_sink_object_given_to_many_runs_mirrors_each_apart(root: Path) -> None:
    """A sweep passes the same sink to every trial, sometimes from several threads at once."""
    import threading

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from runpoint.sinks import TensorBoardSink

    shared = TensorBoardSink(logdir=root.parent / "tb")

    def trial(number: int) -> None:
        with rp.init(project="sweep", id=f"trial-{number}", root=root, sinks=[shared]) as run:
            for step in range(20):
                run.log({"x": float(number)}, step=step)

    trial(0)
    threads = [threading.Thread(target=trial, args=(n,)) for n in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for number in range(3):
        logdir = read_external(root / "sweep" / f"trial-{number}")["tensorboard"]["external"]["logdir"]
        accumulator = EventAccumulator(logdir, size_guidance={"scalars": 0})
        accumulator.Reload()
        assert [(e.step, e.value) for e in accumulator.Scalars("x")] == [(s, float(number)) for s in range(20)]


def test_an_importer_without_its_tool_names_the_extra(tmp_path: Path, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from runpoint.importers import mlflow as mlflow_import

    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(rp.MissingDependencyError, match=r"pip install 'runpoint\[mlflow\]'"):
        mlflow_import.import_runs(str(tmp_path), root=root)


def test_a_typed_config_chooses_its_sinks(root: Path) -> None:
    from .conftest import REPO

    cfg = rp.load_config(REPO / "examples" / "configs" / "base.yaml", overrides=["experiment.sinks=[tensorboard]"])
    with rp.init(config=cfg, root=root) as run:
        run.log({"x": 1.0})
    assert read_external(run.dir)["tensorboard"]["status"] == "finished"


@pytest.mark.parametrize(
    "sinks_yaml",
    [
        "{{mlflow: {{tracking_uri: '{uri}', options: {{retries: 0}}}}}}",  # the README's mapping form
        "[tensorboard, {{mlflow: {{tracking_uri: '{uri}'}}}}]",  # a list mixing names and {{name: options}}
    ],
)
def test_sinks_with_options_in_a_yaml_config_reach_the_sink(
    root: Path, tmp_path: Path, mlflow_sqlite: str, sinks_yaml: str
) -> None:
    from mlflow import MlflowClient

    path = tmp_path / "config.yaml"
    path.write_text(f"experiment:\n  project: yamlsinks\n  sinks: {sinks_yaml.format(uri=mlflow_sqlite)}\n")
    cfg = rp.load_config(path)
    with rp.init(config=cfg, root=root) as run:
        run.log({"x": 1.0}, step=0)
    record = read_external(run.dir)["mlflow"]
    assert record["status"] == "finished", record
    assert record["external"]["tracking_uri"] == mlflow_sqlite
    mirrored = MlflowClient(tracking_uri=mlflow_sqlite).get_run(record["external"]["run_id"])
    assert mirrored.data.tags["runpoint.run_id"] == run.id
    assert mirrored.data.metrics["x"] == 1.0


@pytest.mark.parametrize(
    ("sinks_yaml", "issue"),
    [
        ("[tensorbord]", "experiment.sinks[0]: got 'tensorbord', expected a sink: tensorboard, mlflow, wandb; did you mean 'tensorboard'?"),
        ("[{mlfow: {tracking_uri: x}}]", "experiment.sinks[0]: unknown sink 'mlfow', expected one of tensorboard, mlflow, wandb; did you mean 'mlflow'?"),
        ("{mlflow: {trackin_uri: x}}", "experiment.sinks: the mlflow sink has no option 'trackin_uri'; it takes tracking_uri, experiment, log_config_artifact, options"),
        ("[{mlflow: 3}]", "experiment.sinks[0]: expected the options of the mlflow sink as a mapping, like {mlflow: {option: value}}"),
        ("[{mlflow: {}, wandb: {}}]", "experiment.sinks[0]: expected one sink per list entry, {name: {option: value}}; got 2 names"),
        ("[mlflow, {mlflow: {tracking_uri: x}}]", "'mlflow' listed more than once"),
    ],
)
def test_bad_sinks_in_a_yaml_config_are_named(tmp_path: Path, sinks_yaml: str, issue: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"experiment: {{sinks: {sinks_yaml}}}\n")
    with pytest.raises(rp.ConfigError) as caught:
        rp.load_config(path)
    (found,) = caught.value.issues
    assert found.startswith(issue) or issue in found, found
