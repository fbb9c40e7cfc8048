"""The dashboard's Models API and page: list, show with lineage and alias history, Register from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi")
torch = pytest.importorskip("torch")

import runpoint as rp  # noqa: E402
from runpoint.store.registry import model_registry, registered_steps  # noqa: E402
from runpoint.store.sqlite import SQLiteStore  # noqa: E402


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, str]:
    root = tmp_path / "runpoint"
    with rp.init(project="vision", name="cnn", root=root, console=False, system_metrics=False,
                 config={"training": {"seed": 1}}) as run:
        ckpt = rp.CheckpointManager(run, keep_last=3, monitor="val/acc", mode="max")
        for step in (100, 200):
            run.log({"val/acc": step / 1000}, step=step)
            ckpt.save(step, {"w": torch.full((8,), float(step))}, metrics={"val/acc": step / 1000})
    return root, run.id


@pytest.fixture
def client(trained: tuple[Path, str]):  # noqa: ANN201
    from fastapi.testclient import TestClient

    from runpoint.server.app import create_app

    with TestClient(create_app(trained[0]), base_url="http://127.0.0.1") as client:
        yield client


def test_a_checkpoint_registered_from_the_dashboard_is_listed_shown_and_protected(client, trained) -> None:  # noqa: ANN001
    root, run_id = trained
    assert client.get("/api/models").json() == {"models": []}
    assert client.get("/api/info").json()["registers_models"] is True

    made = client.post(f"/api/runs/{run_id}/checkpoints/100/register",
                       json={"name": "cnn", "alias": "champion", "description": "first"})
    assert made.status_code == 200, made.text
    assert (made.json()["version"], made.json()["step"], made.json()["alias"]) == (1, 100, "champion")
    assert client.post(f"/api/runs/{run_id}/checkpoints/200/register", json={"name": "cnn"}).json()["version"] == 2

    (model,) = client.get("/api/models").json()["models"]
    assert (model["name"], model["project"], model["versions"], model["latest"], model["aliases"]) == \
        ("cnn", "vision", 2, 2, {"champion": 1})
    shown = client.get("/api/models/cnn").json()
    first = shown["versions"][0]
    assert (first["run_id"], first["step"], first["description"], first["lineage"]["metric"]) == (run_id, 100, "first", "val/acc")
    assert first["lineage"]["metric_value"] == 0.1
    assert [(e["alias"], e["to_version"], e["outcome"]) for e in shown["history"]] == [("champion", 1, "moved")]
    assert [v["version"] for v in client.get(f"/api/runs/{run_id}/models").json()["versions"]] == [1, 2]

    store = SQLiteStore(root / "runpoint.db")  # what the dashboard registered is in the root's registry
    try:
        assert registered_steps(store, run_id) == {100, 200}
        registry = model_registry(store)
        assert registry is not None and registry.get_version("cnn", 1).manifest_hash == first["manifest_hash"]
    finally:
        store.close()
    loaded = rp.load_model("cnn@champion", root=root)
    assert torch.equal(loaded["w"], torch.full((8,), 100.0))


def test_bad_registrations_are_refused_with_the_reason(client, trained) -> None:  # noqa: ANN001
    _, run_id = trained
    bad_name = client.post(f"/api/runs/{run_id}/checkpoints/100/register", json={"name": "no spaces"})
    assert bad_name.status_code == 400 and "name" in bad_name.json()["detail"]
    no_step = client.post(f"/api/runs/{run_id}/checkpoints/150/register", json={"name": "cnn"})
    assert no_step.status_code in (400, 404) and "150" in no_step.json()["detail"]
    no_run = client.post("/api/runs/nosuchrun/checkpoints/100/register", json={"name": "cnn"})
    assert no_run.status_code == 404
    assert client.get("/api/models/cnn").status_code == 404
    assert "no model 'cnn'" in client.get("/api/models/cnn").json()["detail"]
    assert client.get("/api/models").json() == {"models": []}  # nothing half-registered


def test_the_lineage_names_the_metric_the_configs_checkpoint_policy_monitors(tmp_path: Path) -> None:
    root = tmp_path / "runpoint"
    config = {"training": {"checkpoint": {"monitor": "val/loss", "mode": "min"}}}
    with rp.init(project="p", root=root, config=config, console=False, system_metrics=False) as run:
        run.log({"val/acc": 0.9, "val/loss": 0.3}, step=5)
        rp.CheckpointManager(run).save(5, {"w": torch.zeros(2)}, metrics={"val/acc": 0.9, "val/loss": 0.3})
    version = rp.register_model("m", run.id, root=root)
    assert (version.lineage["metric"], version.lineage["metric_value"]) == ("val/loss", 0.3)
