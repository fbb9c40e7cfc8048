"""One contract over every sink, against the real tools.

Each backend mirrors a real run and is then read back with the tool's own reader:
TensorBoard's EventAccumulator, MlflowClient against a real ``mlflow server`` and against
a local sqlite store, and the W&B offline run file. The contract: the full nested config
arrives with secrets masked, every scalar arrives with its step and wall time, summary
values and the final status arrive, ids and links land in ``external.json``, and a
resumed run continues the same external run.
"""

from __future__ import annotations

import json
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

import runpoint as rp
from runpoint.sinks import MLflowSink, TensorBoardSink, WandbSink, read_external
from runpoint.store.sqlite import SQLiteStore

from . import wandb_records

CONFIG = {
    "training": {"learning_rate": 3e-4, "epochs": 3, "amp": True},
    "model": {"name": "mlp", "hidden": [64, 32]},
    "data": {"password": "hunter2", "path": "/data/digits"},
}
MASKED_CONFIG = {**CONFIG, "data": {"password": "********", "path": "/data/digits"}}
STEPS = 250


@dataclass
class Mirrored:
    """What a tool holds after mirroring, in runpoint's terms."""

    config: dict[str, Any]
    params: dict[str, str]  # flattened config as the tool shows it, values as text
    scalars: dict[str, list[tuple[int, float, float]]]  # key -> (step, value, wall time)
    summary: dict[str, Any] = field(default_factory=dict)
    status: str | None = None  # completed | failed | None (the tool has no status)
    exact: bool = True  # False: values are float32
    media: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)  # key -> step -> what the tool shows


@dataclass
class Backend:
    name: str  # the key in external.json
    make_sink: Callable[[], Any]
    read: Callable[[dict[str, Any]], Mirrored]
    has_summary: bool = True


# -- readers ---------------------------------------------------------------------------


def read_tensorboard(external: dict[str, Any]) -> Mirrored:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    acc = EventAccumulator(external["logdir"], size_guidance={"scalars": 0, "tensors": 0, "images": 0, "histograms": 0})
    acc.Reload()
    scalars = {tag: [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
    start = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_START_INFO_TAG]).session_start_info
    params = {key: str(value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))) for key, value in start.hparams.items()}
    status = None
    if metadata.SESSION_END_INFO_TAG in content:
        end = plugin_data_pb2.HParamsPluginData.FromString(content[metadata.SESSION_END_INFO_TAG]).session_end_info
        status = {api_pb2.STATUS_SUCCESS: "completed", api_pb2.STATUS_FAILURE: "failed"}.get(end.status, "other")
    config = {}
    if "config" in acc.Tags()["tensors"]:
        config = yaml.safe_load(textwrap.dedent(acc.Tensors("config")[0].tensor_proto.string_val[0].decode()))
    media: dict[str, dict[int, dict[str, Any]]] = {}
    for tag in acc.Tags()["images"]:
        media[tag] = {e.step: {"kind": "image", "width": e.width, "height": e.height} for e in acc.Images(tag)}
    for tag in acc.Tags()["histograms"]:
        media[tag] = {e.step: {"kind": "histogram", "count": e.histogram_value.num} for e in acc.Histograms(tag)}
    for tag in acc.Tags()["tensors"]:
        if tag != "config":
            media[tag] = {e.step: {"kind": "text", "text": e.tensor_proto.string_val[0].decode()} for e in acc.Tensors(tag)}
    return Mirrored(config=config, params=params, scalars=scalars, status=status, exact=False, media=media)


def read_mlflow(external: dict[str, Any]) -> Mirrored:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=external["tracking_uri"])
    run = client.get_run(external["run_id"])
    scalars = {}
    for key in run.data.metrics:
        history = sorted(client.get_metric_history(run.info.run_id, key), key=lambda m: (m.timestamp, m.step))
        scalars[key] = [(m.step, m.value, m.timestamp / 1000) for m in history]
    config = {}
    if any(info.path == "runpoint/config.yaml" for info in client.list_artifacts(run.info.run_id, "runpoint")):
        config = yaml.safe_load(Path(client.download_artifacts(run.info.run_id, "runpoint/config.yaml")).read_text())
    status = {"FINISHED": "completed", "FAILED": "failed"}.get(run.info.status, run.info.status)
    summary_tags = {k.removeprefix("runpoint.summary."): v for k, v in run.data.tags.items() if k.startswith("runpoint.summary.")}
    summary = {**summary_tags, **{k: v for k, v in run.data.metrics.items() if k.startswith("best/")}}
    from PIL import Image

    media: dict[str, dict[int, dict[str, Any]]] = {}
    for path in _artifacts(client, run.info.run_id, "images"):
        if path.endswith(".png") and "+step+" in path:  # MLflow's stepped images: key+step+N+timestamp+...
            name, _, rest = path.removeprefix("images/").partition("+step+")
            with Image.open(client.download_artifacts(run.info.run_id, path)) as image:
                size = image.size
            media.setdefault(name.replace("~", "/"), {})[int(rest.split("+")[0])] = {
                "kind": "image", "width": size[0], "height": size[1],
            }
    for path in _artifacts(client, run.info.run_id, "runpoint/media"):
        key, _, file = path.removeprefix("runpoint/media/").rpartition("/")
        step = int(file.removeprefix("step-").split(".")[0])
        content = Path(client.download_artifacts(run.info.run_id, path)).read_text()
        if file.endswith(".txt"):
            media.setdefault(key, {})[step] = {"kind": "text", "text": content}
        else:
            data = json.loads(content)
            kind = "histogram" if "edges" in data else "table"
            media.setdefault(key, {})[step] = {"kind": kind, "count": sum(data["counts"])} if kind == "histogram" else {
                "kind": kind, "rows": len(data["rows"])}
    return Mirrored(
        config=config, params=dict(run.data.params), scalars=scalars,
        summary=summary, status=status, media=media,
    )


def _artifacts(client: Any, run_id: str, path: str) -> list[str]:
    found = []
    for info in client.list_artifacts(run_id, path):
        found += _artifacts(client, run_id, info.path) if info.is_dir else [info.path]
    return found


def read_wandb(external: dict[str, Any]) -> Mirrored:
    (path,) = Path(external["dir"]).glob("run-*.wandb")
    data = wandb_records.read_run(path)
    config = {key: value for key, value in data["config"].items() if key != "_wandb"}
    scalars: dict[str, list[tuple[int, float, float]]] = {}
    media: dict[str, dict[int, dict[str, Any]]] = {}
    for row in data["history"]:
        step = row["runpoint/step"]
        names = {key.removesuffix("/_type") for key in row if key.endswith("/_type")}  # media in this row
        for name in names:
            kind = {"image-file": "image", "histogram": "histogram", "table-file": "table"}[row[f"{name}/_type"]]
            shown: dict[str, Any] = {"kind": kind}
            if kind == "image":
                shown.update(width=row[f"{name}/width"], height=row[f"{name}/height"])
            elif kind == "histogram":
                shown["count"] = sum(row[f"{name}/values"])
            else:
                shown["rows"] = row[f"{name}/nrows"]
            media.setdefault(name, {})[step] = shown
        for key, value in row.items():
            if not key.startswith("_") and key != "runpoint/step" and not any(key.startswith(n + "/") for n in names):
                scalars.setdefault(key, []).append((step, float(value), row["_timestamp"]))
    status = {0: "completed", 1: "failed"}.get(data["exit_code"], None)
    return Mirrored(config=config, params={}, scalars=scalars, summary=data["summary"], status=status, media=media)


@pytest.fixture(params=["tensorboard", pytest.param("mlflow-server", marks=pytest.mark.slow), "mlflow-sqlite", "wandb-offline"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    kind = request.param
    if kind == "tensorboard":
        pytest.importorskip("tensorboard")
        return Backend("tensorboard", TensorBoardSink, read_tensorboard, has_summary=False)
    if kind == "mlflow-server":
        url = request.getfixturevalue("mlflow_server")
        return Backend("mlflow", lambda: MLflowSink(tracking_uri=url, experiment=f"contract-{tmp_path.name}"), read_mlflow)
    if kind == "mlflow-sqlite":
        uri = request.getfixturevalue("mlflow_sqlite")
        return Backend("mlflow", lambda: MLflowSink(tracking_uri=uri), read_mlflow)
    pytest.importorskip("wandb")
    for name in ("WANDB_API_KEY", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return Backend("wandb", WandbSink, read_wandb)


def _stored(root: Path, run_id: str, key: str) -> list[tuple[int, float, float]]:
    with SQLiteStore(root / "runpoint.db") as store:
        return list(store.read_metric(run_id, key).points())


def _same(mirrored: list[tuple[int, float, float]], stored: list[tuple[int, float, float]], exact: bool) -> None:
    assert [p[0] for p in mirrored] == [p[0] for p in stored]
    for (_, value, wall), (_, want, want_wall) in zip(mirrored, stored):
        if math.isnan(want):
            assert math.isnan(value)
        else:
            assert value == (want if exact else pytest.approx(want, rel=1e-6))
        assert wall == pytest.approx(want_wall, abs=1e-3)  # MLflow keeps milliseconds


def test_sink_mirrors_config_scalars_summary_and_status(backend: Backend, root: Path) -> None:
    with rp.init(project="contract", name="mirror", config=CONFIG, tags=["cnn"], root=root,
                 sinks=[backend.make_sink()], flush_interval=0.05) as run:
        for step in range(STEPS):
            run.log({"train/loss": 1.0 / (step + 1), "train/lr": 3e-4 * 0.99**step}, step=step)
            if step % 50 == 49:
                run.log({"val/acc": step / STEPS}, step=step)
        run.log({"train/loss": float("nan")}, step=STEPS)
        run.log({"late/x": 7.0}, step=3)  # a step that goes back must not be dropped
        run.summary["best/acc"] = 0.75
    record = read_external(run.dir)[backend.name]
    assert record["status"] == "finished", record
    assert record["points_sent"] == 2 * STEPS + STEPS // 50 + 2 and record["points_dropped"] == 0
    mirrored = backend.read(record["external"])

    assert mirrored.config == MASKED_CONFIG
    assert "hunter2" not in repr(mirrored.params) + repr(mirrored.config)
    if mirrored.params:
        assert float(mirrored.params["training.learning_rate"]) == 3e-4
        assert mirrored.params["model.name"] == "mlp"
    for key in ("train/loss", "train/lr", "val/acc", "late/x"):
        _same(mirrored.scalars[key], _stored(root, run.id, key), mirrored.exact)
    if backend.has_summary:
        assert float(mirrored.summary["best/acc"]) == 0.75
    assert mirrored.status == "completed"


def test_sink_mirrors_a_failed_run(backend: Backend, root: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with rp.init(project="contract", config=CONFIG, root=root, sinks=[backend.make_sink()]) as run:
            run.log({"x": 1.0}, step=0)
            1 / 0
    record = read_external(run.dir)[backend.name]
    assert record["status"] == "finished"
    mirrored = backend.read(record["external"])
    assert mirrored.status == "failed"
    assert [p[:2] for p in mirrored.scalars["x"]] == [(0, 1.0)]


def test_resumed_run_continues_the_same_external_run(backend: Backend, root: Path) -> None:
    with rp.init(project="contract", config=CONFIG, root=root, sinks=[backend.make_sink()]) as run:
        run.log({"x": 1.0}, step=0)
    first = read_external(run.dir)[backend.name]["external"]
    with rp.init(project="contract", root=root, resume=run.id, sinks=[backend.make_sink()]) as resumed:
        resumed.log({"x": 2.0}, step=1)
    second = read_external(run.dir)[backend.name]
    assert second["status"] == "finished"
    identity = {"tensorboard": "logdir", "mlflow": "run_id", "wandb": "id"}[backend.name]
    assert second["external"][identity] == first[identity]
    if backend.name == "wandb":  # an offline resume writes a second file for the same W&B id
        assert read_wandb(first).scalars["x"][0][:2] == (0, 1.0)
        assert read_wandb(second["external"]).scalars["x"][0][:2] == (1, 2.0)
    else:
        assert [p[:2] for p in backend.read(second["external"]).scalars["x"]] == [(0, 1.0), (1, 2.0)]


def test_resumed_run_mirrored_for_the_first_time_gets_the_config(backend: Backend, root: Path) -> None:
    # the first attempt had no sink: the resumed one opens a new external run, which
    # must carry the params and config like any new one
    with rp.init(project="contract", config=CONFIG, root=root) as run:
        run.log({"x": 1.0}, step=0)
    with rp.init(project="contract", root=root, resume=run.id, sinks=[backend.make_sink()]) as resumed:
        resumed.log({"x": 2.0}, step=1)
    record = read_external(run.dir)[backend.name]
    assert record["status"] == "finished", record
    mirrored = backend.read(record["external"])
    assert mirrored.config == MASKED_CONFIG
    if backend.name == "mlflow":
        assert mirrored.params["model.name"] == "mlp"
        assert float(mirrored.params["training.learning_rate"]) == 3e-4
        assert mirrored.params["data.password"] == "********"


def test_external_json_has_ids_and_links(backend: Backend, root: Path) -> None:
    with rp.init(project="contract", root=root, sinks=[backend.make_sink()]) as run:
        run.log({"x": 1.0})
    external = read_external(run.dir)[backend.name]["external"]
    if backend.name == "tensorboard":
        assert Path(external["logdir"]) == run.dir / "tensorboard"
    elif backend.name == "mlflow":
        assert len(external["run_id"]) == 32 and external["experiment_id"]
        if external["tracking_uri"].startswith("http"):
            assert external["url"] == (
                f"{external['tracking_uri']}/#/experiments/{external['experiment_id']}/runs/{external['run_id']}"
            )
    else:
        assert external["id"] == run.id and external["mode"] == "offline"
        assert Path(external["dir"]).parent == run.dir / "wandb"


def test_sink_mirrors_images_histograms_texts_and_tables(backend: Backend, root: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    pixels = (np.arange(8 * 6 * 3) % 251).astype(np.uint8).reshape(8, 6, 3)  # 8 high, 6 wide
    with rp.init(project="contract", root=root, sinks=[backend.make_sink()]) as run:
        for step in range(3):
            run.log({
                "loss": 1.0 / (step + 1),
                "samples/digit": rp.Image(pixels, caption=f"step {step}"),
                "weights/hist": rp.Histogram(np.linspace(-1, 1, 100) * (step + 1), bins=10),
                "gen/text": rp.Text(f"generated at step {step}"),
                "eval/confusion": rp.Table([[5, 1], [0, 6]], columns=["pred 0", "pred 1"]),
            }, step=step)
    record = read_external(run.dir)[backend.name]
    assert record["status"] == "finished" and record["media_sent"] == 12, record
    media = backend.read(record["external"]).media
    assert set(media) == {"samples/digit", "weights/hist", "gen/text", "eval/confusion"}
    for step in range(3):
        assert media["samples/digit"][step] == {"kind": "image", "width": 6, "height": 8}
        assert media["weights/hist"][step] == {"kind": "histogram", "count": 100}
        text = media["gen/text"][step]
        assert text == ({"kind": "table", "rows": 1} if backend.name == "wandb" else
                        {"kind": "text", "text": f"generated at step {step}"})
        table = media["eval/confusion"][step]
        if backend.name == "tensorboard":  # TensorBoard shows text only: a markdown table
            assert table["text"].splitlines() == ["| pred 0 | pred 1 |", "|---|---|", "| 5 | 1 |", "| 0 | 6 |"]
        else:
            assert table == {"kind": "table", "rows": 2}
