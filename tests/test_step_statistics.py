"""Step timer, NaN/Inf guard, monitored best values and the model summary, read back from the store."""

from __future__ import annotations

import math

import pytest
import torch

import runpoint as rp
from runpoint import query

from .conftest import run_script


def _series(run: rp.Run, key: str) -> dict[int, float]:
    run.flush()
    series = run.store.read_metric(run.id, key)
    return dict(zip(series.steps, series.values))


def test_the_step_timer_logs_time_throughput_and_peak_memory_at_the_step_just_logged(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        timer = run.step_timer()
        for step in range(5):
            sum(range(20_000))
            run.log({"loss": 1.0}, step=step * 10)
            measured = timer.tick(samples=32)
            assert measured["perf/samples_per_s"] == pytest.approx(32 / measured["perf/step_time_s"])
        times = _series(run, "perf/step_time_s")
        rates = _series(run, "perf/samples_per_s")
        assert list(times) == [0, 10, 20, 30, 40] == list(rates)
        for step in times:
            assert times[step] > 0 and rates[step] == pytest.approx(32 / times[step])
        rss = _series(run, "perf/cpu_rss_peak_mb")
        assert all(value > 10 for value in rss.values())  # a Python process with torch is well over 10 MiB
        assert list(rss.values()) == sorted(rss.values())  # a peak never goes down
        assert not [k for k in run.store.metric_keys(run.id) if k.startswith("perf/cuda")] or torch.cuda.is_initialized()


def test_the_step_timer_averages_over_every_n_ticks_and_takes_explicit_steps(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        timer = run.step_timer(every=3)
        logged = [timer.tick(samples=2, step=step) for step in range(7)]
        assert [bool(v) for v in logged] == [False, False, True, False, False, True, False]
        assert list(_series(run, "perf/step_time_s")) == [2, 5]
        untimed = run.step_timer()
        assert "perf/samples_per_s" not in untimed.tick(step=9)  # without samples: no throughput
        with pytest.raises(rp.InvalidArgumentError, match="samples"):
            untimed.tick(samples=-1)
        with pytest.raises(rp.InvalidArgumentError, match="every"):
            run.step_timer(every=0)


def test_the_guard_marks_the_first_non_finite_loss_once(root, store_at) -> None:
    with rp.init(project="p", id="g1", root=root, console=False) as run:
        for step in range(10):
            value = math.inf if step == 6 else (math.nan if step >= 8 else 1.0 / (step + 1))
            run.log({"train/loss": value, "val/acc": math.nan, "watch/grad_norm": math.nan}, step=step)
        run.log({"val/loss": math.nan}, step=7)  # later in the same flush, but a later step
        assert run.summary["first_nonfinite/step"] == 6
    summary = store_at().get_summary("g1")
    assert summary == {"first_nonfinite/step": 6, "first_nonfinite/key": "train/loss",
                       "first_nonfinite/value": "Infinity"}


def test_the_guard_fires_in_a_later_flush_and_a_resumed_run_keeps_the_first_mark(root, store_at) -> None:
    with rp.init(project="p", id="g2", root=root, console=False) as run:
        run.log({"loss": 1.0}, step=0)
        run.flush()
        assert "first_nonfinite/step" not in run.summary
        run.log({"loss": -math.inf}, step=1)
    with rp.init(project="p", resume="g2", root=root, console=False) as run:
        run.log({"loss": math.nan}, step=2)
    assert store_at().get_summary("g2")["first_nonfinite/step"] == 1
    assert store_at().get_summary("g2")["first_nonfinite/value"] == "-Infinity"


def test_the_guard_warns_in_the_console_log(root, tmp_path) -> None:
    result = run_script(tmp_path, root, """
        import math, runpoint as rp
        with rp.init(project="p", id="w1") as run:
            run.log({"train/loss": 1.0}, step=0)
            run.log({"train/loss": math.nan}, step=1)
    """)
    assert result.returncode == 0, result.stderr
    assert "train/loss became NaN at step 1" in result.stderr
    assert "train/loss became NaN at step 1" in (root / "p" / "w1" / "logs" / "console.log").read_text()


def test_monitor_keeps_the_best_value_and_its_step_in_the_summary(root, store_at) -> None:
    with rp.init(project="p", id="b1", root=root, console=False) as run:
        run.log({"val/loss": 0.9, "val/acc": 0.5}, step=0)
        run.monitor("val/loss", "min")  # points logged before monitor() count too
        run.monitor("val/acc", "max")
        for step, (loss, acc) in enumerate([(0.7, 0.6), (math.nan, 0.9), (0.4, 0.9), (0.5, 0.8)], start=1):
            run.log({"val/loss": loss, "val/acc": acc}, step=step)
            run.flush()
        assert (run.summary["best/val/loss"], run.summary["best/val/loss.step"]) == (0.4, 3)
        assert (run.summary["best/val/acc"], run.summary["best/val/acc.step"]) == (0.9, 2)  # the earlier tie stays
        with pytest.raises(rp.InvalidArgumentError, match="mode"):
            run.monitor("val/loss", "max")
        with pytest.raises(rp.InvalidArgumentError, match="mode"):
            run.monitor("x", "lowest")
    with rp.init(project="p", resume="b1", root=root, console=False) as run:
        run.monitor("val/loss", "min")
        run.log({"val/loss": 0.45}, step=5)
        run.log({"val/loss": 0.3}, step=6)
    summary = store_at().get_summary("b1")
    assert (summary["best/val/loss"], summary["best/val/loss.step"]) == (0.3, 6)
    best = {b.key: b for b in query_best(store_at(), "b1")}
    assert best["val/loss"].monitored and (best["val/loss"].value, best["val/loss"].step) == (0.3, 6)


def query_best(store, run_id):
    from runpoint.query import analysis

    return analysis.best_metrics(store, run_id)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())
        self.head = torch.nn.Linear(4 * 6 * 6, 10)
        self.tied = self.head  # the same module twice: counted once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x).flatten(1))


def test_log_model_writes_the_layer_table_and_stores_the_totals_as_params(root, store_at) -> None:
    model = _Net()
    model.encoder[0].requires_grad_(False)
    model.train()
    with rp.init(project="p", id="m1", root=root, console=False) as run:
        summary = run.log_model(model, example_input=torch.zeros(2, 1, 8, 8))
    conv = 1 * 4 * 3 * 3 + 4
    bn = 4 + 4
    head = 4 * 6 * 6 * 10 + 10
    assert (summary.params_total, summary.params_trainable, summary.params_frozen) == (conv + bn + head, bn + head, conv)
    assert summary.buffers_total == 4 + 4 + 1  # running mean, var, num_batches_tracked
    assert summary.size_bytes == (conv + bn + head) * 4 + (4 + 4) * 4 + 8
    assert model.training and model.encoder[1].training  # the example forward ran in eval mode, then restored
    assert model.encoder[1].num_batches_tracked.item() == 0  # ... and did not touch BatchNorm statistics
    text = (root / "p" / "m1" / "model_summary.txt").read_text()
    for fragment in ("Conv2d", "BatchNorm2d", "(2, 4, 6, 6)", "(2, 10)", f"{head:,}", "Frozen params:     40",
                     "Input: (2, 1, 8, 8) float32"):
        assert fragment in text, fragment
    conv_line = next(line for line in text.splitlines() if "Conv2d" in line)
    assert conv_line.rstrip().endswith("no")
    params = store_at().get_params("m1")
    assert params["model.params_total"] == conv + bn + head and params["model.params_frozen"] == conv
    assert params["model.size_bytes"] == summary.size_bytes


def test_log_model_without_an_example_and_with_a_name(root) -> None:
    with rp.init(project="p", root=root, console=False) as run:
        summary = run.log_model(torch.nn.Linear(3, 2), name="critic")
        assert summary.params_total == 8 and summary.rows[0].output_shape == ""
        assert (run.dir / "critic_summary.txt").is_file()
        with pytest.raises(rp.InvalidArgumentError, match="name"):
            run.log_model(torch.nn.Linear(1, 1), name="../x")
        with pytest.raises(rp.InvalidArgumentError, match="torch.nn.Module"):
            run.log_model("model")
        run.flush()
        assert query.run_details(run.store, run.store.get_run(run.id))["params"]["critic.params_total"] == 8
