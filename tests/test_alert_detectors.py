"""Each alert detector on synthetic series (fed directly, as the writer thread feeds it), the rate limiter,
and the monitor that ties them to a batch, with a clock of the test's own."""

from __future__ import annotations

import math
import random
from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from runpoint.alerts import (
    AlertMonitor,
    DivergenceDetector,
    KeyMatcher,
    NonFiniteDetector,
    PlateauDetector,
    RateLimiter,
    SpikeDetector,
    StallDetector,
    ThroughputDetector,
)
from runpoint.config.alerts import AlertsConfig
from runpoint.store import AlertRecord, MetricSeries, WriteBatch


def _fed_in_pieces(detector, key, values, cuts, steps=None):
    """What ``detector`` finds in ``values`` fed as batches cut at ``cuts``."""
    steps = list(steps if steps is not None else range(len(values)))
    edges = [0, *sorted(set(c for c in cuts if 0 < c < len(values))), len(values)]
    found = []
    for start, end in zip(edges, edges[1:]):
        found += detector.observe(key, array("q", steps[start:end]), array("d", values[start:end]))
    return found


def test_a_spike_in_noise_is_found_at_its_step_once_and_a_falling_loss_never_spikes() -> None:
    rng = random.Random(0)
    noisy = [1.0 + rng.gauss(0, 0.01) for _ in range(400)]
    noisy[300] = 1.5  # 50 sigma
    noisy[301] = 1.4  # the same burst: no second alert
    found = _fed_in_pieces(SpikeDetector(window=100, z_threshold=6), "train/loss", noisy, [37, 299, 350])
    assert [(f.kind, f.step, f.key, f.level) for f in found] == [("spike", 300, "train/loss", "warning")]
    assert "standard deviations above" in found[0].text
    falling = [1.0 / (i + 1) for i in range(5000)]
    assert _fed_in_pieces(SpikeDetector(), "loss", falling, [1000, 1001, 4000]) == []
    assert _fed_in_pieces(SpikeDetector(), "loss", [float("nan")] * 50 + [1.0] * 50, [10]) == []  # NaN: not its job


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False), st.lists(st.floats(0, 1e3, allow_nan=False), min_size=0, max_size=300),
       st.lists(st.integers(0, 300), max_size=6))
def test_no_spike_on_a_constant_or_non_increasing_series_however_it_is_batched(start, drops, cuts) -> None:
    constant = [start] * 300
    assert _fed_in_pieces(SpikeDetector(window=20, min_points=5, use_numpy=False), "loss", constant, cuts) == []
    falling = [start]
    for drop in drops:
        falling.append(falling[-1] - drop)
    assert _fed_in_pieces(SpikeDetector(window=20, min_points=5), "loss", falling, cuts) == []


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.floats(-10, 10), st.sampled_from([math.nan, math.inf, -math.inf])), max_size=200),
       st.lists(st.integers(0, 200), max_size=5))
def test_detectors_find_the_same_alerts_however_the_series_is_cut_into_batches(values, cuts) -> None:
    for make in (lambda: SpikeDetector(window=10, min_points=3, use_numpy=False), NonFiniteDetector,
                 lambda: DivergenceDetector(evaluations=3, mode="min"), lambda: PlateauDetector(patience_steps=20)):
        whole = _fed_in_pieces(make(), "val/loss", values, [])
        assert _fed_in_pieces(make(), "val/loss", values, cuts) == whole


def test_nonfinite_alerts_once_per_key_until_it_is_finite_again() -> None:
    detector = NonFiniteDetector()
    nan, inf = math.nan, math.inf
    found = _fed_in_pieces(detector, "loss", [1.0, nan, nan, 2.0, inf, inf, -inf], [2, 5])
    assert [(f.step, f.title, f.level) for f in found] == [
        (1, "loss became NaN at step 1", "error"), (4, "loss became Infinity at step 4", "error")]
    assert detector.observe("loss", array("q", [7]), array("d", [nan])) == []  # still bad: no second alert
    assert detector.observe("other", array("q", [0, 1]), array("d", [1.0, 2.0])) == []


def test_divergence_needs_n_worse_evaluations_in_a_row_in_the_key_s_direction() -> None:
    detector = DivergenceDetector(evaluations=4)
    rising = [0.5, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7]  # worse from 0.4 on: the 4th rise is 0.6
    found = _fed_in_pieces(detector, "val/loss", rising, [3], steps=[100 * i for i in range(7)])
    assert [(f.kind, f.step, f.key) for f in found] == [("divergence", 500, "val/loss")]
    assert "rose 4 evaluations in a row" in found[0].text
    # again only after it improved: a drop, then 4 more rises
    again = _fed_in_pieces(detector, "val/loss", [0.3, 0.31, 0.32, 0.33, 0.34], [2], steps=[800, 900, 1000, 1100, 1200])
    assert [f.step for f in again] == [1200]
    falling_acc = [0.9, 0.8, 0.7, 0.6]
    assert len(_fed_in_pieces(DivergenceDetector(evaluations=3), "val/acc", falling_acc, [])) == 1
    assert _fed_in_pieces(DivergenceDetector(evaluations=3), "val/acc", sorted(falling_acc), []) == []
    assert _fed_in_pieces(DivergenceDetector(evaluations=2), "val/lr", [1.0, 2.0, 3.0], []) == []  # no direction
    assert len(_fed_in_pieces(DivergenceDetector(evaluations=2, mode="max"), "val/lr", [3.0, 2.0, 1.0], [])) == 1


def test_plateau_alerts_once_after_patience_steps_without_a_new_best() -> None:
    detector = PlateauDetector(patience_steps=1000)
    steps = [0, 250, 500, 750, 1000, 1250, 1500]
    values = [0.80, 0.85, 0.84, 0.85, 0.83, 0.849, 0.80]  # best 0.85 at step 250; 0.85 again is not better
    found = _fed_in_pieces(detector, "val/acc", values, [2, 5], steps=steps)
    assert [(f.kind, f.step, f.level) for f in found] == [("plateau", 1250, "info")]  # the first step past patience
    assert "than 0.85 (step 250) for 1000 steps" in found[0].text
    assert detector.observe("val/acc", array("q", [1750, 2500]), array("d", [0.9, 0.85])) == []  # improved at 1750
    assert len(detector.observe("val/acc", array("q", [2750]), array("d", [0.1]))) == 1
    with_delta = PlateauDetector(patience_steps=100, min_delta=0.1)
    assert len(_fed_in_pieces(with_delta, "val/loss", [1.0, 0.95, 0.92], [], steps=[0, 50, 100])) == 1


def test_stall_alerts_once_per_silence() -> None:
    stall = StallDetector(after_s=10, now=1000.0)
    assert stall.check(1009.9) is None
    finding = stall.check(1010.0, step=42)
    assert finding is not None and finding.kind == "stall" and finding.step == 42
    assert stall.check(1100.0) is None
    stall.activity(1100.0)
    assert stall.check(1105.0) is None and stall.check(1111.0) is not None


def test_throughput_drop_below_a_fraction_of_the_running_median() -> None:
    detector = ThroughputDetector(fraction=0.5, window_s=10, min_samples=3, patience=2)
    found, step, t = [], 0, 0.0
    for rate, windows in ((100, 6), (20, 3), (100, 3), (30, 4)):
        for _ in range(windows * 10):  # a batch a second
            step, t = step + rate, t + 1.0
            found.append(detector.observe(step, t))
    alerts = [f for f in found if f is not None]
    assert [a.kind for a in alerts] == ["throughput", "throughput"]  # once per drop, again after recovering
    assert "20 steps/s" in alerts[0].title and "running median 100" in alerts[0].text
    steady = ThroughputDetector(window_s=5)
    assert all(steady.observe(i * 50, float(i)) is None for i in range(1000))


def test_rate_limiter_counts_what_it_suppresses_and_sums_it_up_once_room_is_back() -> None:
    limiter = RateLimiter(per_minute=3)
    assert [limiter.admit("spike", 0.0) for _ in range(5)] == [True, True, True, False, False]
    assert limiter.admit("user", 1.0) is True  # per kind
    assert limiter.summaries(30.0) == []
    assert limiter.admit("spike", 59.0) is False
    (summary,) = limiter.summaries(60.0)
    assert (summary.kind, summary.title) == ("spike", "3 more spike alerts suppressed")
    assert limiter.admit("spike", 60.5) is True and limiter.total_suppressed == 3


def _batch(metrics=None, alerts=()) -> WriteBatch:
    series = {k: MetricSeries(array("q", s), array("d", v), array("d", t)) for k, (s, v, t) in (metrics or {}).items()}
    return WriteBatch(metrics=series, alerts=list(alerts))


def test_the_monitor_puts_limited_alerts_in_the_batch_and_checks_for_a_stall_with_its_clock(caplog) -> None:
    clock = [1000.0]
    settings_ = AlertsConfig(max_per_minute=2, stall={"after_s": 30})
    monitor = AlertMonitor("r1", settings_, clock=lambda: clock[0])
    batch = _batch({"train/loss": ([0, 1, 2], [1.0, math.nan, 1.0], [1000.0] * 3), "system/cpu": ([0], [math.nan], [1000.0])})
    monitor.inspect(batch)
    assert sorted((a.kind, a.key, a.run_id) for a in batch.alerts) == [
        ("nonfinite", "system/cpu", "r1"), ("nonfinite", "train/loss", "r1")]
    user = [AlertRecord("", 1000.0, "info", "user", f"u{i}") for i in range(5)]
    batch = _batch(alerts=user)
    monitor.inspect(batch)
    assert [a.title for a in batch.alerts] == ["u0", "u1"] and all(a.run_id == "r1" for a in batch.alerts)
    clock[0] += 20  # system metrics alone are no progress: 29 s without a training metric is no stall yet
    monitor.inspect(_batch({"system/cpu": ([1], [5.0], [clock[0]])}))
    clock[0] += 9
    quiet = _batch()
    monitor.inspect(quiet)
    assert quiet.alerts == []
    clock[0] += 2
    stalled = _batch()
    monitor.inspect(stalled)
    assert [(a.kind, a.step) for a in stalled.alerts] == [("stall", 2)]
    clock[0] += 60
    later = _batch()
    monitor.inspect(later)
    assert [a.title for a in later.alerts] == ["3 more user alerts suppressed"]
    assert "runpoint: error alert, run r1: train/loss became NaN at step 1" in caplog.text
    assert caplog.text.count("u0") == 1  # printed once


def test_key_patterns_are_globs_without_case() -> None:
    watched = KeyMatcher(["*loss*", "val*"])
    assert [watched(k) for k in ("train/Loss", "val/acc", "grad/norm", "validation")] == [True, True, False, True]
    assert KeyMatcher([])("anything") is False


def test_the_numpy_path_finds_what_the_point_by_point_loop_finds() -> None:
    import numpy  # noqa: F401  (loaded: the detector's batch path uses it)

    rng = random.Random(1)
    values = [100.0 + rng.gauss(0, 1.0) for _ in range(20_000)]
    for at in (500, 505, 4000, 12_345, 19_999):
        values[at] += 40.0
    values[7000] = math.nan
    cuts = [1, 70, 4000, 4001, 9000]
    fast = _fed_in_pieces(SpikeDetector(), "loss", values, cuts)
    slow = _fed_in_pieces(SpikeDetector(use_numpy=False), "loss", values, cuts)
    assert [f.step for f in fast] == [500, 4000, 12_345, 19_999]  # 505: the same burst as 500
    assert [(f.step, f.title) for f in fast] == [(f.step, f.title) for f in slow]
