"""Charts: the matplotlib figures hold the stored data, and `runpoint plot` writes images that open."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image as PILImage

import runpoint as rp
from runpoint import query
from runpoint.query import analysis
from runpoint.reports import plots

from .conftest import cli

TRAIN = [2.0 / (1 + 0.1 * s) + 0.05 * math.sin(s) for s in range(40)]
VAL = {9: 1.1, 19: 0.8, 29: 0.7, 39: 0.72}


@pytest.fixture
def trained(root):
    with rp.init(project="p", id="r1", name="first", root=root, console=False) as run:
        for step, loss in enumerate(TRAIN):
            run.log({"train/loss": loss, "train/acc": 1 - loss / 3, "epoch": step // 10}, step=step)
            if step in VAL:
                run.log({"val/loss": VAL[step], "val/acc": 1 - VAL[step] / 3}, step=step)
    with rp.init(project="p", id="r2", name="second", root=root, console=False) as run:
        for step in range(25):
            run.log({"val/loss": 1.0 / (step + 1), "train/loss": math.nan if step == 12 else 1.0}, step=step)
    return root


def _line(ax, label):
    matches = [line for line in ax.get_lines() if line.get_label() == label]
    assert matches, f"no line {label!r} in {[l.get_label() for l in ax.get_lines()]}"
    return matches[0]


def test_the_training_panel_draws_the_stored_series(trained, store_at) -> None:
    store = store_at()
    figure = plots.training_panel(store, store.get_run("r1"), smoothing=0.6)
    loss, accuracy, log_loss, gap = figure.axes
    assert [ax.get_title() for ax in figure.axes] == ["Loss", "Accuracy", "Loss (log scale)", "Generalisation gap (val \u2212 train)"]
    raw = _line(loss, "train/loss (raw)")
    assert list(raw.get_xdata()) == list(range(40)) and list(raw.get_ydata()) == TRAIN
    assert list(_line(loss, "train/loss").get_ydata()) == pytest.approx(analysis.ema(TRAIN, 0.6))
    val = _line(loss, "val/loss")  # four points: drawn as they are, not smoothed
    assert list(val.get_xdata()) == list(VAL) and list(val.get_ydata()) == list(VAL.values())
    assert log_loss.get_yscale() == "log" and loss.get_yscale() == "linear"
    assert list(_line(accuracy, "val/acc").get_ydata()) == pytest.approx([1 - v / 3 for v in VAL.values()])
    smooth_train = analysis.ema(TRAIN, 0.6)
    expected_gap = [VAL[s] - smooth_train[s] for s in VAL]
    (gap_line,) = [line for line in gap.get_lines() if "val/loss" in line.get_label()]
    assert list(gap_line.get_xdata()) == list(VAL) and list(gap_line.get_ydata()) == pytest.approx(expected_gap)
    assert gap.get_xlim() == loss.get_xlim()


def test_a_non_finite_loss_is_marked_and_missing_panels_say_why(trained, store_at) -> None:
    store = store_at()
    figure = plots.training_panel(store, store.get_run("r2"))
    loss, accuracy, _, _ = figure.axes
    (marker,) = [line for line in loss.get_lines() if line.get_label().startswith("first NaN/Inf")]
    assert list(marker.get_xdata()) == [12, 12]
    assert [t.get_text() for t in accuracy.texts] == ["no accuracy metric logged"]


def test_the_epoch_axis_and_one_panel_per_key(trained, store_at) -> None:
    store = store_at()
    figure = plots.keys_figure(store, store.get_run("r1"), ["val/loss", "epoch", "train/acc"], axis="epoch", smoothing=0)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["val/loss", "epoch", "train/acc"]
    assert list(_line(visible[0], "val/loss").get_xdata()) == [0.0, 1.0, 2.0, 3.0]
    assert visible[0].get_xlabel() == "epoch"
    with pytest.raises(rp.InvalidArgumentError, match="no metric 'nope'"):
        plots.keys_figure(store, store.get_run("r1"), ["nope"])


def test_runs_are_overlaid_one_line_each(trained, store_at) -> None:
    store = store_at()
    runs = [store.get_run("r1"), store.get_run("r2")]
    figure = plots.overlay_figure(store, runs, "val/loss", smoothing=0.6)
    (ax,) = figure.axes
    assert list(_line(ax, "first (r1)").get_ydata()) == list(VAL.values())
    second = query.metric_history(store, "r2", "val/loss")
    assert list(_line(ax, "second (r2) (raw)").get_ydata()) == list(second.values)
    with pytest.raises(rp.InvalidArgumentError, match="none of the runs"):
        plots.overlay_figure(store, runs, "missing")


def test_long_series_are_thinned_but_keep_their_extremes() -> None:
    xs = [float(i) for i in range(100_000)]
    ys = [math.sin(i / 1000) for i in range(100_000)]
    ys[54_321] = 50.0
    thin_x, thin_y = plots._thin(xs, ys)
    assert len(thin_x) <= plots.MAX_POINTS + 2
    assert max(thin_y) == 50.0 and min(thin_y) == min(ys) and thin_x == sorted(thin_x)


@pytest.mark.parametrize(
    "keys, loss_key, expected",
    [
        (["train/loss", "val/loss", "train/loss_aux"], "loss", ("train/loss", "val/loss")),
        (["loss", "eval/loss"], "loss", ("loss", "eval/loss")),
        (["train_loss", "val_loss"], "loss", ("train_loss", "val_loss")),
        (["training/accuracy", "valid/acc"], "acc", ("training/accuracy", "valid/acc")),
        (["watch/grad_norm", "lr"], "loss", (None, None)),
    ],
)
def test_training_and_validation_keys_are_found_by_name(keys, loss_key, expected) -> None:
    assert plots.find_pair(keys, loss_key) == expected


@pytest.mark.slow  # the CLI importing matplotlib and torch in a child, ~9 s
def test_the_plot_command_writes_images_that_open(trained, tmp_path) -> None:
    out = tmp_path / "panel.png"
    result = cli(trained, "plot", "r1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    with PILImage.open(out) as image:
        assert image.format == "PNG" and image.size == (1200, 800)
    keys = cli(trained, "plot", "first", "train/loss", "val/acc", "--out", str(tmp_path / "keys.svg"), "--json")
    assert json.loads(keys.stdout) == {"out": str(tmp_path / "keys.svg"), "runs": ["r1"], "keys": ["train/loss", "val/acc"]}
    assert (tmp_path / "keys.svg").read_text().lstrip().startswith("<?xml")
    overlay = cli(trained, "plot", "r1", "r2", "--key", "val/acc", "--out", str(tmp_path / "o.png"))
    assert overlay.returncode == 0 and "run r2 (second) has no metric 'val/acc'; left out" in overlay.stderr
    default = cli(trained, "plot", "r2", cwd=tmp_path)
    assert default.returncode == 0 and (tmp_path / "r2.png").is_file()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["plot", "r1", "--out", "x.gif"], "must end in .png"),
        (["plot", "r1", "--x", "hours"], "not one of step, epoch, time"),
        (["plot", "r1", "nope"], "no metric 'nope'"),
        (["plot", "zzz"], "no run matches 'zzz'"),
        (["plot", "r1", "--out", "/no/such/dir/x.png"], "does not exist"),
    ],
)
def test_the_plot_command_explains_bad_input_in_one_line(trained, tmp_path, args, fragment) -> None:
    result = cli(trained, *args, cwd=tmp_path)
    assert result.returncode == 1 and fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_plot_of_a_run_without_metrics_fails_cleanly(root, tmp_path) -> None:
    with rp.init(project="p", id="empty", root=root, console=False):
        pass
    result = cli(root, "plot", "empty", cwd=tmp_path)
    assert result.returncode == 1 and "logged no metrics" in result.stderr
