"""Importing TensorBoard logdirs written by real writers (torch's SummaryWriter, TF2-style tensors)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

import runpoint as rp
from runpoint import query
from runpoint.importers import tensorboard as tb_import
from runpoint.store.sqlite import SQLiteStore

pytest.importorskip("tensorboard")

T0 = 1_750_000_000.0  # wall times we choose, so that we can check they are kept


def f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def write_torch_logs(logdir: Path) -> None:
    """Two runs the way a PyTorch script writes them: scalars at our wall times, hparams in one."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(logdir / "baseline")) as writer:
        for step in range(100):
            writer.add_scalar("train/loss", 1.0 / (step + 1), step, walltime=T0 + step)
            if step % 10 == 0:
                writer.add_scalar("val/acc", step / 100, step, walltime=T0 + step + 0.5)
    with SummaryWriter(str(logdir / "sweep" / "lr-0.1")) as writer:
        writer.add_scalar("train/loss", 0.5, 0, walltime=T0 + 1000)
        writer.add_scalar("train/loss", 0.25, 7, walltime=T0 + 1001)


def write_hparams_run(logdir: Path) -> None:
    """A run with HParams (session start and end) and TF2-style tensor scalars, via TensorBoard's protos."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(logdir / "tuned"))

    def plugin(tag: str, name: str, content: bytes, wall: float) -> None:
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=name, content=content))
        writer.add_event(Event(wall_time=wall, step=0, summary=Summary(value=[Summary.Value(tag=tag, metadata=meta)])))

    start = plugin_data_pb2.SessionStartInfo()
    start.hparams["optimizer.lr"].number_value = 0.003
    start.hparams["optimizer.name"].string_value = "adamw"
    start.hparams["model.layers"].number_value = 4
    start.hparams["amp"].bool_value = True
    data = plugin_data_pb2.HParamsPluginData(session_start_info=start, version=metadata.PLUGIN_DATA_VERSION)
    plugin(metadata.SESSION_START_INFO_TAG, metadata.PLUGIN_NAME, data.SerializeToString(), T0 + 2000)
    scalar_meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    for step in range(5):
        tensor = tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE, double_val=[step * 0.1], tensor_shape=tensor_shape_pb2.TensorShapeProto()
        )
        value = Summary.Value(tag="eval/score", metadata=scalar_meta, tensor=tensor)
        writer.add_event(Event(wall_time=T0 + 2001 + step, step=step * 10, summary=Summary(value=[value])))
    end = plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_FAILURE)
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end, version=metadata.PLUGIN_DATA_VERSION)
    plugin(metadata.SESSION_END_INFO_TAG, metadata.PLUGIN_NAME, data.SerializeToString(), T0 + 2010)
    writer.close()


def _runs_by_name(root: Path) -> dict[str, rp.RunStatus]:
    with SQLiteStore(root / "runpoint.db") as store:
        return {run.name: run for run in store.list_runs()}


def test_every_run_comes_in_with_full_history_steps_and_wall_times(tmp_path: Path, root: Path) -> None:
    logdir = tmp_path / "tb_logs"
    write_torch_logs(logdir)
    ids = tb_import.import_runs(str(logdir), root=root)

    assert len(ids) == 2
    runs = _runs_by_name(root)
    assert set(runs) == {"baseline", "sweep/lr-0.1"}
    baseline = runs["baseline"]
    assert baseline.project == "tb_logs" and baseline.status is rp.RunStatus.COMPLETED
    assert set(baseline.tags) == {"imported", "tensorboard"}
    with SQLiteStore(root / "runpoint.db") as store:
        loss = store.read_metric(baseline.id, "train/loss")
        assert list(loss.steps) == list(range(100))
        assert list(loss.values) == [f32(1.0 / (s + 1)) for s in range(100)]
        assert list(loss.times) == [T0 + s for s in range(100)]
        acc = store.read_metric(baseline.id, "val/acc")
        assert list(acc.steps) == list(range(0, 100, 10))
        assert list(acc.times) == [T0 + s + 0.5 for s in range(0, 100, 10)]
        sweep = store.read_metric(runs["sweep/lr-0.1"].id, "train/loss")
        assert list(sweep.points()) == [(0, 0.5, T0 + 1000), (7, 0.25, T0 + 1001)]
    assert baseline.created_at == T0 and baseline.ended_at == T0 + 99
    run_dir = root / baseline.dir
    assert (run_dir / "config.yaml").exists()
    assert '"from": "tensorboard"' in (run_dir / "meta.json").read_text()


def test_hparams_become_the_config_and_tensor_scalars_are_read(tmp_path: Path, root: Path) -> None:
    write_hparams_run(tmp_path / "logs")
    (run_id,) = tb_import.import_runs(str(tmp_path / "logs"), root=root, project="tuning")
    with SQLiteStore(root / "runpoint.db") as store:
        run = store.get_run(run_id)
        assert run.project == "tuning" and run.status is rp.RunStatus.FAILED
        assert store.get_params(run_id) == {
            "optimizer.lr": 0.003, "optimizer.name": "adamw", "model.layers": 4, "amp": True,
        }
        score = store.read_metric(run_id, "eval/score")
        assert list(score.points()) == [(s * 10, s * 0.1, T0 + 2001 + s) for s in range(5)]
    # the params are searchable like a native run's
    store = query.open_root(root)
    assert [r.id for r in query.list_runs(store, where=["params.optimizer.lr < 0.01"])] == [run_id]
    store.close()


def test_importing_again_skips_what_is_already_there(tmp_path: Path, root: Path) -> None:
    write_torch_logs(tmp_path / "logs")
    first = tb_import.import_runs(str(tmp_path / "logs"), root=root)
    assert tb_import.import_runs(str(tmp_path / "logs"), root=root) == []
    with SQLiteStore(root / "runpoint.db") as store:
        assert store.count_runs() == len(first) == 2


def test_a_truncated_event_file_gives_what_is_readable(tmp_path: Path, root: Path) -> None:
    write_torch_logs(tmp_path / "logs")
    (event_file,) = (tmp_path / "logs" / "baseline").glob("events.out.tfevents.*")
    data = event_file.read_bytes()
    event_file.write_bytes(data[: len(data) * 2 // 3])  # a writer killed mid-file
    tb_import.import_runs(str(tmp_path / "logs"), root=root)
    with SQLiteStore(root / "runpoint.db") as store:
        baseline = next(r for r in store.list_runs() if r.name == "baseline")
        loss = store.read_metric(baseline.id, "train/loss")
        assert 30 < len(loss) < 100
        assert list(loss.steps) == list(range(len(loss)))


def test_a_run_mirrored_by_the_tensorboard_sink_round_trips(tmp_path: Path, root: Path) -> None:
    np = pytest.importorskip("numpy")
    pytest.importorskip("PIL")
    config = {"optimizer": {"lr": 0.01, "name": "sgd"}, "epochs": 3}
    pixels = (np.arange(4 * 6) * 10 % 256).astype(np.uint8).reshape(4, 6)
    with rp.init(project="orig", config=config, root=root, sinks=["tensorboard"]) as run:
        for step in range(50):
            run.log({"loss": 2.0 ** -step}, step=step)
            if step % 20 == 0:
                run.log({"img": rp.Image(pixels), "hist": rp.Histogram(np.arange(64.0) + step, bins=8),
                         "note": rp.Text(f"at {step}")}, step=step)
    other_root = tmp_path / "other"
    (new_id,) = tb_import.import_runs(str(run.dir / "tensorboard"), root=other_root, project="copy")
    original, copy = query.open_root(root), query.open_root(other_root)
    assert copy.get_params(new_id) == original.get_params(run.id)
    assert copy.read_metric(new_id, "loss") == original.read_metric(run.id, "loss")  # powers of 2: exact in f32
    for key in ("img", "hist", "note"):
        before, after = query.read_media(original, run.id, key), query.read_media(copy, new_id, key)
        assert [(r.step, r.time) for r in after] == [(r.step, r.time) for r in before] == [
            (s, r.time) for s, r in zip((0, 20, 40), before)
        ]
        for old, new in zip(before, after):
            if key == "img":
                old_png = (query.run_dir(original, query.resolve_run(original, run.id)) / old.path).read_bytes()
                new_png = (query.run_dir(copy, query.resolve_run(copy, new_id)) / new.path).read_bytes()
                assert new_png == old_png
            elif key == "hist":
                assert new.data["counts"] == old.data["counts"] and new.data["edges"] == old.data["edges"]
                assert new.data["mean"] == pytest.approx(old.data["mean"]) and new.data["std"] == pytest.approx(old.data["std"])
            else:
                assert new.data == old.data
    original.close()
    copy.close()


@pytest.mark.parametrize("make", ["missing", "empty", "file"])
def test_bad_locations_say_what_is_wrong_and_create_nothing(tmp_path: Path, root: Path, make: str) -> None:
    location = tmp_path / "logs"
    if make == "empty":
        location.mkdir()
    elif make == "file":
        location.write_text("not a logdir")
    with pytest.raises(rp.InvalidArgumentError) as caught:
        tb_import.import_runs(str(location), root=root)
    expected = "no TensorBoard event files" if make == "empty" else "is not a directory of TensorBoard logs"
    assert expected in str(caught.value)
    assert not (root / "runpoint.db").exists()


def test_a_bad_project_name_is_refused(tmp_path: Path, root: Path) -> None:
    write_torch_logs(tmp_path / "logs")
    with pytest.raises(rp.InvalidArgumentError, match="project"):
        tb_import.import_runs(str(tmp_path / "logs"), root=root, project="no spaces/allowed")


def test_images_histograms_and_texts_come_in_as_media(tmp_path: Path, root: Path) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    pixels = torch.arange(3 * 5 * 7, dtype=torch.uint8).reshape(3, 5, 7)  # CHW: 5 high, 7 wide
    values = np.linspace(-2.0, 2.0, 1000)
    with SummaryWriter(str(tmp_path / "logs" / "media")) as writer:
        for step in (0, 10):
            writer.add_image("samples/input", pixels, step, walltime=T0 + step)
            writer.add_histogram("weights/fc", values * (step + 1), step, walltime=T0 + step)
            writer.add_text("notes", f"step {step}: fine", step, walltime=T0 + step)
    (run_id,) = tb_import.import_runs(str(tmp_path / "logs"), root=root)

    store = query.open_root(root)
    run = query.resolve_run(store, run_id)
    images = query.read_media(store, run_id, "samples/input")
    assert [(r.step, r.time, r.data["width"], r.data["height"], r.data["channels"]) for r in images] == [
        (0, T0, 7, 5, 3), (10, T0 + 10, 7, 5, 3),
    ]
    from PIL import Image

    with Image.open(query.run_dir(store, run) / images[0].path) as image:
        assert np.array_equal(np.asarray(image).transpose(2, 0, 1), pixels.numpy())  # pixels kept exactly
    histograms = query.read_media(store, run_id, "weights/fc")
    for record, scale in zip(histograms, (1, 11)):
        assert record.data["count"] == 1000 and sum(record.data["counts"]) == 1000
        assert record.data["min"] == pytest.approx(-2.0 * scale) and record.data["max"] == pytest.approx(2.0 * scale)
        assert record.data["mean"] == pytest.approx(0.0, abs=1e-9 * scale)
        assert record.data["std"] == pytest.approx(float(np.std(values * scale)), rel=1e-9)
        assert record.data["edges"] == sorted(record.data["edges"])
    texts = query.read_media(store, run_id, "notes/text_summary")
    assert [(r.step, r.data["text"]) for r in texts] == [(0, "step 0: fine"), (10, "step 10: fine")]
    store.close()


@pytest.mark.slow  # over 5 s: the default run keeps under 6 minutes on 2 cores
def test_runpoint_import_tensorboard_on_the_command_line(tmp_path: Path, root: Path) -> None:
    import json

    from .conftest import cli

    write_torch_logs(tmp_path / "logs")
    result = cli(root, "import", "tensorboard", str(tmp_path / "logs"), "--project", "legacy", "--json")
    assert result.returncode == 0, result.stderr
    imported = json.loads(result.stdout)
    assert imported["source"] == "tensorboard" and len(imported["runs"]) == 2
    listed = json.loads(cli(root, "ls", "--project", "legacy", "--json").stdout)
    assert sorted(run["id"] for run in listed) == sorted(imported["runs"])
    again = cli(root, "import", "tensorboard", str(tmp_path / "logs"), "--project", "legacy")
    assert again.returncode == 0 and "imported 0 run(s)" in again.stderr
    missing = cli(root, "import", "tensorboard", str(tmp_path / "nowhere"))
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [f"runpoint: location: {tmp_path / 'nowhere'} is not a directory of TensorBoard logs"]
    assert cli(root, "import", "tensorboard").returncode == 2


def test_a_jpeg_image_comes_in_as_png(tmp_path: Path, root: Path) -> None:
    import io

    from PIL import Image
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    buffer = io.BytesIO()
    Image.new("RGB", (9, 4), (200, 10, 10)).save(buffer, format="JPEG")
    writer = EventFileWriter(str(tmp_path / "logs" / "jpeg"))
    image = Summary.Image(height=4, width=9, colorspace=3, encoded_image_string=buffer.getvalue())
    writer.add_event(Event(wall_time=T0, step=3, summary=Summary(value=[Summary.Value(tag="photo", image=image)])))
    writer.close()
    (run_id,) = tb_import.import_runs(str(tmp_path / "logs"), root=root)
    store = query.open_root(root)
    (record,) = query.read_media(store, run_id, "photo")
    assert (record.step, record.data["width"], record.data["height"], record.data["format"]) == (3, 9, 4, "png")
    with Image.open(query.run_dir(store, query.resolve_run(store, run_id)) / record.path) as stored:
        assert stored.format == "PNG" and stored.size == (9, 4)
        red, green, _ = stored.getpixel((4, 2))
        assert red > 180 and green < 40
    store.close()
