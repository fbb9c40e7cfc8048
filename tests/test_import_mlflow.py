"""Importing MLflow runs from a real tracking server and from a local sqlite store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

import runpoint as rp
from runpoint.importers import mlflow as mlflow_import
from runpoint.store.sqlite import SQLiteStore

from .conftest import free_port

pytest.importorskip("mlflow")

T0_MS = 1_750_000_000_000


def populate(uri: str, experiment: str) -> dict[str, str]:
    """Runs the way an MLflow user leaves them; returns MLflow run ids by name."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(tracking_uri=uri)
    experiment_id = client.create_experiment(experiment)
    ids = {}
    run = client.create_run(experiment_id, run_name="baseline", start_time=T0_MS,
                            tags={"mlflow.note.content": "first try", "team": "vision", "cnn": ""})
    params = [Param("lr", "0.001"), Param("model.layers", "[64, 32]"), Param("model.name", "resnet"),
              Param("amp", "True"), Param("api_token", "abc123"), Param("warmup", "1e3"), Param("seed", "007")]
    metrics = [Metric("train/loss", 1.0 / (s + 1), T0_MS + 1000 * s + 7, s) for s in range(1500)]  # > one page
    metrics.append(Metric("val/acc", math.nan, T0_MS + 5, 0))
    for start in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + 1000], params=params if start == 0 else [])
    client.set_terminated(run.info.run_id, "FINISHED", end_time=T0_MS + 2_000_000)
    ids["baseline"] = run.info.run_id

    failed = client.create_run(experiment_id, run_name="diverged", start_time=T0_MS + 10)
    client.log_metric(failed.info.run_id, "train/loss", 5.0, timestamp=T0_MS + 20, step=3)
    client.log_metric(failed.info.run_id, "train/loss", float("inf"), timestamp=T0_MS + 30, step=4)
    client.set_terminated(failed.info.run_id, "FAILED", end_time=T0_MS + 40)
    ids["diverged"] = failed.info.run_id

    running = client.create_run(experiment_id, run_name="abandoned", start_time=T0_MS + 50)
    ids["abandoned"] = running.info.run_id
    return ids


@pytest.fixture(params=["sqlite", pytest.param("server", marks=pytest.mark.slow)])  # a real server: ~28 s
def tracking(request: pytest.FixtureRequest) -> str:
    if request.param == "server":
        return request.getfixturevalue("mlflow_server")
    return request.getfixturevalue("mlflow_sqlite")


def _by_name(root: Path, project: str) -> dict[str, rp.Run]:
    with SQLiteStore(root / "runpoint.db") as store:
        return {run.name: run for run in store.list_runs() if run.project == project}


def test_runs_come_in_with_params_history_times_and_status(tracking: str, root: Path, tmp_path: Path) -> None:
    experiment = f"legacy-{tmp_path.name}"
    populate(tracking, experiment)
    ids = mlflow_import.import_runs(tracking, root=root)
    runs = _by_name(root, experiment)
    assert set(runs) == {"baseline", "diverged", "abandoned"}
    assert {run.id for run in runs.values()} <= set(ids)

    baseline = runs["baseline"]
    assert baseline.status is rp.RunStatus.COMPLETED and baseline.notes == "first try"
    assert baseline.created_at == T0_MS / 1000 and baseline.ended_at == T0_MS / 1000 + 2000
    assert set(baseline.tags) == {"imported", "mlflow", "cnn"}
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.get_params(baseline.id) == {
            "lr": 0.001, "model.layers": [64, 32], "model.name": "resnet", "amp": True, "api_token": "********",
            "warmup": "1e3", "seed": "007",  # strings that look like numbers stay strings
        }
        loss = store.read_metric(baseline.id, "train/loss")
        assert list(loss.steps) == list(range(1500))
        assert list(loss.values) == [1.0 / (s + 1) for s in range(1500)]
        assert list(loss.times) == [(T0_MS + 1000 * s + 7) / 1000 for s in range(1500)]
        assert math.isnan(store.read_metric(baseline.id, "val/acc").values[0])
        diverged = store.read_metric(runs["diverged"].id, "train/loss")
        assert list(diverged.steps) == [3, 4] and diverged.values[0] == 5.0
        assert diverged.values[1] > 1e300  # MLflow's store keeps +inf as the largest double
    assert runs["diverged"].status is rp.RunStatus.FAILED
    assert runs["abandoned"].status is rp.RunStatus.CRASHED
    config = (root / baseline.dir / "config.yaml").read_text()
    assert yaml.safe_load(config)["model"] == {"layers": [64, 32], "name": "resnet"} and "abc123" not in config


def test_importing_again_creates_nothing(root: Path, mlflow_sqlite: str) -> None:
    uri = mlflow_sqlite
    populate(uri, "again")
    assert len(mlflow_import.import_runs(uri, root=root, project="legacy")) == 3
    assert mlflow_import.import_runs(uri, root=root, project="legacy") == []


def test_runs_runpoint_mirrored_itself_are_not_imported_twice(root: Path, tmp_path: Path, mlflow_sqlite: str) -> None:
    uri = mlflow_sqlite
    from runpoint.sinks import MLflowSink

    with rp.init(project="native", root=root, sinks=[MLflowSink(tracking_uri=uri)]) as run:
        run.log({"x": 1.0})
    assert mlflow_import.import_runs(uri, root=root) == []
    assert len(mlflow_import.import_runs(uri, root=tmp_path / "elsewhere")) == 1


def test_a_directory_store_and_a_db_file_are_understood(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"")
    (tmp_path / "mlruns").mkdir()
    assert mlflow_import.tracking_uri(str(tmp_path / "mlflow.db")) == f"sqlite:///{tmp_path}/mlflow.db"
    assert mlflow_import.tracking_uri(str(tmp_path / "mlruns")) == (tmp_path / "mlruns").as_uri()
    assert mlflow_import.tracking_uri("http://example.com:5000") == "http://example.com:5000"


@pytest.mark.parametrize("location", ["nowhere/at/all", "http://127.0.0.1:{port}"])
def test_bad_locations_fail_fast_with_a_reason(root: Path, location: str) -> None:
    location = location.format(port=free_port())
    with pytest.raises(rp.InvalidArgumentError) as caught:
        mlflow_import.import_runs(location, root=root)
    assert str(caught.value).startswith("location: ")
    assert not (root / "runpoint.db").exists()


@pytest.mark.slow  # the CLI importing mlflow in a child, ~17 s
def test_runpoint_import_mlflow_on_the_command_line(root: Path, mlflow_sqlite: str) -> None:
    import json

    from .conftest import cli

    populate(mlflow_sqlite, "cli")
    result = cli(root, "import", "mlflow", mlflow_sqlite, "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["runs"]) == 3
    names = {run["name"] for run in json.loads(cli(root, "ls", "--project", "cli", "--json").stdout)}
    assert names == {"baseline", "diverged", "abandoned"}
    dead = cli(root, "import", "mlflow", f"http://127.0.0.1:{free_port()}")
    assert dead.returncode == 1 and dead.stderr.startswith("runpoint: location: cannot reach the MLflow server at")
