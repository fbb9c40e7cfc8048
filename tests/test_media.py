"""Images, histograms, texts and tables logged with run.log, read back from the store and the files."""

from __future__ import annotations

import io
import math
import threading

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

import runpoint as rp
from runpoint import query
from runpoint.media import media_path

from .conftest import cli


def _read(run: rp.Run, key: str, step: int | None = None) -> list[rp.store.MediaRecord]:  # type: ignore[name-defined]
    run.flush()
    return query.read_media(run.store, run.id, key, step=step)


def _pixels(run: rp.Run, record) -> np.ndarray:
    path = run.dir / record.path
    assert path.is_file() and path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    with PILImage.open(path) as image:
        return np.asarray(image).copy()


def test_a_uint8_image_is_stored_as_a_png_with_the_same_pixels(root) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"train/loss": 0.5, "samples": rp.Image(pixels, caption="first")}, step=4)
        (record,) = _read(run, "samples")
        assert (record.step, record.kind, record.path) == (4, "image", "media/samples/0000000004.png")
        assert record.data == {"width": 9, "height": 7, "channels": 3, "format": "png", "caption": "first"}
        assert record.file is None  # read back from the store: open the path
        np.testing.assert_array_equal(_pixels(run, record), pixels)
        assert list(run.store.read_metric(run.id, "train/loss").values) == [0.5]  # scalars beside media


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: np.array([[0.0, 0.5], [1.0, 2.0]]), np.array([[0, 128], [255, 255]], dtype=np.uint8)),
        (lambda: np.array([[math.nan, -1.0]]), np.array([[0, 0]], dtype=np.uint8)),
        (lambda: np.array([[True, False]]), np.array([[255, 0]], dtype=np.uint8)),
        (lambda: np.array([[-5, 300]], dtype=np.int32), np.array([[0, 255]], dtype=np.uint8)),
        (lambda: torch.tensor([[[0.0, 1.0]]]), np.array([[0, 255]], dtype=np.uint8)),  # CHW with C=1
    ],
)
def test_floats_bools_and_ints_are_scaled_and_clipped_to_bytes(root, make, expected) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"img": rp.Image(make())}, step=0)
        (record,) = _read(run, "img")
        assert record.data["channels"] == 1
        np.testing.assert_array_equal(_pixels(run, record), expected)


def test_torch_tensors_are_channels_first_and_numpy_arrays_channels_last(root) -> None:
    hwc = np.random.default_rng(1).integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"chw": rp.Image(torch.from_numpy(hwc).permute(2, 0, 1)), "hwc": rp.Image(hwc),
                 "rgba": rp.Image(np.dstack([hwc, np.full((5, 6), 7, np.uint8)]))}, step=0)
        np.testing.assert_array_equal(_pixels(run, _read(run, "chw")[0]), hwc)
        np.testing.assert_array_equal(_pixels(run, _read(run, "hwc")[0]), hwc)
        rgba = _read(run, "rgba")[0]
        assert rgba.data["channels"] == 4 and _pixels(run, rgba)[0, 0, 3] == 7


@pytest.mark.parametrize(
    "shape, layout",
    [((8, 4, 4, 1), "NHWC"), ((8, 1, 4, 4), "NCHW"), ((3, 5, 5), "CHW"), ((5, 5, 3), "HWC"), ((4, 7, 3), "HWC")],
)
def test_the_smaller_end_of_an_ambiguous_shape_is_read_as_channels(shape, layout) -> None:
    from runpoint.media.types import _layout

    assert _layout(shape, channels_first=True) == layout


def test_a_batch_becomes_a_grid_with_every_image_in_place(root) -> None:
    batch = torch.stack([torch.full((1, 4, 4), v / 255.0) for v in (10, 20, 30, 40, 50)])  # N C H W
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"grid": rp.Image(batch)}, step=0)
        (record,) = _read(run, "grid")
        grid = _pixels(run, record)
        assert grid.shape == (4 * 2 + 2, 4 * 3 + 2 * 2)  # 5 images: 3 columns, 2 rows, 2 px borders
        assert grid[0, 0] == 10 and grid[0, 6] == 20 and grid[0, 12] == 30 and grid[6, 0] == 40 and grid[6, 6] == 50
        assert grid[6, 12] == 0 and grid[4, 0] == 0  # the empty cell and the border


def test_pil_images_are_accepted_and_copied(root) -> None:
    image = PILImage.new("P", (3, 2))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((1, 1), 1)
    with rp.init(project="p", root=root, console=False) as run:
        logged = rp.Image(image)
        image.putpixel((0, 0), 1)  # changed after logging: the stored image must not see it
        run.log({"pil": logged}, step=0)
        pixels = _pixels(run, _read(run, "pil")[0])
        assert pixels.shape == (2, 3, 3)
        assert list(pixels[1, 1]) == [255, 0, 0] and list(pixels[0, 0]) == [0, 0, 0]


def test_the_data_is_copied_when_the_value_is_made_not_when_it_is_written(root) -> None:
    pixels = np.zeros((2, 2), dtype=np.uint8)
    values = torch.zeros(100)
    with rp.init(project="p", root=root, console=False) as run:
        image, histogram = rp.Image(pixels), rp.Histogram(values)
        pixels[:] = 255
        values += 5
        run.log({"img": image, "hist": histogram}, step=0)
        assert _pixels(run, _read(run, "img")[0]).max() == 0
        assert _read(run, "hist")[0].data["max"] == 0.0


def test_histogram_bins_match_numpy_and_non_finite_values_are_counted_apart(root) -> None:
    values = np.random.default_rng(2).normal(size=1000)
    with_bad = np.concatenate([values, [math.nan, math.nan, math.inf, -math.inf]])
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"h": rp.Histogram(with_bad, bins=20), "ranged": rp.Histogram(values, bins=4, range=(-1, 1))}, step=2)
        (record,) = _read(run, "h")
        counts, edges = np.histogram(values, bins=20)
        assert record.kind == "histogram" and record.path is None
        assert record.data["counts"] == counts.tolist() and record.data["edges"] == edges.tolist()
        assert (record.data["count"], record.data["nan"], record.data["inf"]) == (1004, 2, 2)
        assert record.data["mean"] == pytest.approx(values.mean()) and record.data["std"] == pytest.approx(values.std())
        assert (record.data["min"], record.data["max"]) == (values.min(), values.max())
        (ranged,) = _read(run, "ranged")
        counts, edges = np.histogram(values, bins=4, range=(-1, 1))
        assert ranged.data["counts"] == counts.tolist() and ranged.data["edges"] == [-1.0, -0.5, 0.0, 0.5, 1.0]
        assert ranged.data["outside"] == int(((values < -1) | (values > 1)).sum())


def test_histograms_of_tensors_lists_and_counts(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({
            "bf16": rp.Histogram(torch.tensor([1.0, 2.0, 3.0], dtype=torch.bfloat16), bins=2),
            "list": rp.Histogram([1, 2, 2, 3], bins=3),
            "counted": rp.Histogram.from_counts([0.0, 1.0, 2.0], [5, 7]),
            "empty": rp.Histogram(np.array([math.nan]), bins=2),
        }, step=0)
        assert _read(run, "bf16")[0].data["counts"] == [1, 2]
        assert _read(run, "list")[0].data["counts"] == [1, 2, 1]
        counted = _read(run, "counted")[0].data
        assert (counted["edges"], counted["counts"], counted["count"]) == ([0.0, 1.0, 2.0], [5, 7], 12)
        empty = _read(run, "empty")[0].data
        assert empty["counts"] == [0, 0] and empty["nan"] == 1 and empty["mean"] is None


def test_histogram_bins_are_counted_on_the_writer_thread(root, monkeypatch) -> None:
    from runpoint.media import encode as _media_encode

    threads: list[str] = []
    original = _media_encode.histogram_data

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(_media_encode, "histogram_data", spy)
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"h": rp.Histogram(np.arange(10.0))}, step=0)
        assert threads == []  # nothing counted by the caller
        run.flush()
    assert len(threads) == 1 and threads[0].startswith("runpoint-writer")


def test_text_and_tables_round_trip_exactly(root) -> None:
    rows = [[0, "cat", 0.97, True, None], [1, "ünïcödé | pipe", math.nan, False, "x"]]
    with rp.init(project="p", root=root, console=False) as run:
        run.log({
            "notes": rp.Text("line one\nline two ✓", caption="c"),
            "preds": rp.Table(rows, columns=["id", "label", "p", "ok", "extra"]),
            "dicts": rp.Table([{"a": 1, "b": np.float32(0.5)}, {"b": 2, "c": torch.tensor(3)}]),
            "columns": rp.Table({"x": [1, 2], "y": ["a", object.__name__]}),
        }, step=1)
        assert _read(run, "notes")[0].data == {"text": "line one\nline two ✓", "caption": "c"}
        table = _read(run, "preds")[0].data
        assert table["columns"] == ["id", "label", "p", "ok", "extra"]
        assert table["rows"][0] == [0, "cat", 0.97, True, None]
        assert table["rows"][1][:2] == [1, "ünïcödé | pipe"] and math.isnan(table["rows"][1][2])
        dicts = _read(run, "dicts")[0].data
        assert dicts == {"columns": ["a", "b", "c"], "rows": [[1, 0.5, None], [None, 2, 3]]}
        assert _read(run, "columns")[0].data["rows"] == [[1, "a"], [2, "object"]]


def test_a_dataframe_becomes_a_table(root) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"a": [1, 2], "b": [0.5, 1.5]})
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"df": rp.Table(frame)}, step=0)
        assert _read(run, "df")[0].data == {"columns": ["a", "b"], "rows": [[1, 0.5], [2, 1.5]]}


def test_media_are_queryable_per_key_and_step_and_a_step_logged_again_is_replaced(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        for step in range(5):
            run.log({"t": rp.Text(f"step {step}"), "img": rp.Image(np.full((2, 2), step, np.uint8))}, step=step)
        run.log({"t": rp.Text("again")}, step=3)
        run.flush()
        keys = query.media_keys(run.store, run.id)
        assert [(k.key, k.kind, k.count, k.first_step, k.last_step) for k in keys] == [
            ("img", "image", 5, 0, 4), ("t", "text", 5, 0, 4)]
        assert [r.data["text"] for r in query.read_media(run.store, run.id, "t")] == [
            "step 0", "step 1", "step 2", "again", "step 4"]
        assert [r.step for r in query.read_media(run.store, run.id, "img", min_step=1, max_step=2)] == [1, 2]
        assert _pixels(run, query.read_media(run.store, run.id, "img", step=4)[0]).max() == 4
        with pytest.raises(rp.InvalidArgumentError, match="no media 'nope'.*it has: img, t"):
            query.read_media(run.store, run.id, "nope")


def test_keys_never_lead_files_outside_media_and_different_keys_never_share_a_file(root) -> None:
    assert media_path("val/samples", 7, ".png") == "media/val/samples/0000000007.png"
    dangerous = ["../../escape", "/abs/path", "a b", "a_b", "..", "x/./y", "ü"]
    paths = {media_path(key, 1, ".png") for key in dangerous}
    assert len(paths) == len(dangerous)
    for path in paths:
        assert path.startswith("media/") and "/../" not in path and "/./" not in path and "//" not in path
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"../../escape": rp.Image(np.zeros((1, 1), np.uint8))}, step=0)
        (record,) = _read(run, "../../escape")
        assert (run.dir / record.path).resolve().is_relative_to((run.dir / "media").resolve())
    assert not (root / "escape").exists() and not (root.parent / "escape").exists()


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: rp.Image(np.zeros((2, 2, 5))), "cannot read shape"),
        (lambda: rp.Image(np.zeros((0, 3))), "empty"),
        (lambda: rp.Image(np.zeros(3)), "cannot read shape"),
        (lambda: rp.Image("pic.png"), "numpy array"),
        (lambda: rp.Image(np.array([["a"]])), "not numeric"),
        (lambda: rp.Image(np.zeros((2, 2)), caption=3), "caption"),
        (lambda: rp.Histogram(np.zeros(3), bins=0), "bins"),
        (lambda: rp.Histogram(np.zeros(3), range=(1, 0)), "range"),
        (lambda: rp.Histogram(["a"]), "numbers"),
        (lambda: rp.Histogram.from_counts([0, 1], [1, 2]), "one more edge"),
        (lambda: rp.Text(5), "string"),
        (lambda: rp.Table([[1, 2], [3]], columns=["a", "b"]), "row 1 has 1 cells"),
        (lambda: rp.Table([[1]], columns=["a", "a"]), "unique"),
        (lambda: rp.Table("rows"), "expected a list"),
        (lambda: rp.Table({"a": [1], "b": [1, 2]}), "different lengths"),
    ],
)
def test_bad_media_raise_at_construction_with_a_clear_message(make, fragment) -> None:
    with pytest.raises(rp.InvalidArgumentError, match=fragment):
        make()


def test_a_string_is_still_not_a_metric_and_the_message_points_to_text(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        with pytest.raises(rp.InvalidValueError, match=r"rp\.Text"):
            run.log({"note": "hello"})


def test_a_media_value_that_fails_to_encode_is_dropped_with_a_warning_and_the_rest_is_kept(root, caplog) -> None:
    class Broken(rp.Text):
        def encode(self, key, step, time):
            raise RuntimeError("boom")

    with rp.init(project="p", root=root, console=False) as run:
        run.log({"bad": Broken("x"), "good": rp.Text("y"), "loss": 1.0}, step=0)
        run.flush()
        assert [k.key for k in query.media_keys(run.store, run.id)] == ["good"]
        assert list(run.store.read_metric(run.id, "loss").values) == [1.0]
    assert "could not encode 'bad'" in caplog.text


def test_media_batches_reach_writer_listeners_with_their_bytes(root) -> None:
    seen = []
    with rp.init(project="p", root=root, console=False) as run:
        run._writer.listeners.append(lambda run_id, batch: seen.extend(batch.media))
        run.log({"img": rp.Image(np.zeros((2, 3), np.uint8)), "t": rp.Text("hi")}, step=0)
        run.flush()
    image = next(r for r in seen if r.kind == "image")
    assert image.file is not None and image.file == (run.dir / image.path).read_bytes()
    assert next(r for r in seen if r.kind == "text").file is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_images_and_histograms_do_not_sync_the_caller(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        image = torch.rand(3, 8, 8, device="cuda")
        values = torch.randn(10_000, device="cuda")
        torch.cuda.set_sync_debug_mode("error")
        try:
            run.log({"img": rp.Image(image), "h": rp.Histogram(values)}, step=0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        expected = np.rint(image.permute(1, 2, 0).cpu().numpy() * 255).astype(np.uint8)
        np.testing.assert_array_equal(_pixels(run, _read(run, "img")[0]), expected)
        assert _read(run, "h")[0].data["count"] == 10_000


def test_the_media_command_lists_keys_and_values(root) -> None:
    with rp.init(project="p", id="m1", root=root, console=False) as run:
        run.log({"img": rp.Image(np.zeros((4, 5), np.uint8)), "t": rp.Text("hello there")}, step=3)
    listed = cli(root, "media", "m1")
    assert listed.returncode == 0, listed.stderr
    assert "img" in listed.stdout and "image" in listed.stdout and "text" in listed.stdout
    shown = cli(root, "media", "m1", "img", "--json")
    import json

    (record,) = json.loads(shown.stdout)
    assert record["step"] == 3 and record["data"]["width"] == 5 and record["file"].endswith("media/img/0000000003.png")
    missing = cli(root, "media", "m1", "nope")
    assert missing.returncode == 1 and "no media 'nope'" in missing.stderr


def test_png_bytes_are_valid_images(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        run.log({"img": rp.Image(np.random.default_rng(3).random((16, 16, 3)))}, step=0)
        path = run.dir / _read(run, "img")[0].path
    with PILImage.open(io.BytesIO(path.read_bytes())) as image:
        image.verify()
