"""Statistics over repeated runs (runpoint.query.stats / groups) against references computed here.

scipy's ttest_ind and bootstrap, and Hedges' exact gamma correction, are independent of the
code under test (which computes Welch's t and df itself and only asks scipy for t quantiles).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from runpoint.errors import InvalidArgumentError
from runpoint.query.groups import group_params
from runpoint.query.stats import (
    bootstrap_difference,
    compare_samples,
    hedges_g,
    summarize,
)


def _draw(seed: int, mean: float, std: float, n: int) -> list[float]:
    return np.random.default_rng(seed).normal(mean, std, n).tolist()


@pytest.mark.parametrize("n", [2, 3, 5, 12])
def test_summary_is_the_t_interval_of_the_mean(n: int) -> None:
    values = _draw(n, 0.9, 0.02, n)
    summary = summarize(values)
    low, high = scipy.stats.t.interval(0.95, n - 1, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert summary.n == n
    assert summary.mean == pytest.approx(np.mean(values), rel=1e-12)
    assert summary.std == pytest.approx(np.std(values, ddof=1), rel=1e-12)
    assert (summary.ci_low, summary.ci_high) == (pytest.approx(low, rel=1e-10), pytest.approx(high, rel=1e-10))
    one = summarize([0.5])
    assert one.mean == 0.5 and math.isnan(one.std) and math.isnan(one.ci_low)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_welch_test_matches_scipy_in_the_metric_direction(mode: str) -> None:
    a, b = _draw(1, 0.90, 0.01, 5), _draw(2, 0.92, 0.03, 7)  # unequal variances and sizes: Welch, not Student
    result = compare_samples(a, b, mode=mode, metric="val/acc")  # type: ignore[arg-type]
    reference = scipy.stats.ttest_ind(b, a, equal_var=False)
    sign = 1 if mode == "max" else -1
    assert result.p == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.t == pytest.approx(sign * reference.statistic, rel=1e-9)
    assert result.df == pytest.approx(reference.df, rel=1e-9)
    assert result.improvement == pytest.approx(sign * (np.mean(b) - np.mean(a)), rel=1e-12)
    assert result.se == pytest.approx(math.sqrt(np.var(a, ddof=1) / 5 + np.var(b, ddof=1) / 7), rel=1e-12)
    student = scipy.stats.ttest_ind(b, a, equal_var=True)
    assert result.p != pytest.approx(student.pvalue, rel=1e-3)


def test_hedges_g_matches_the_exact_gamma_correction() -> None:
    a, b = _draw(3, 1.0, 0.2, 6), _draw(4, 1.3, 0.25, 9)
    df = 6 + 9 - 2
    pooled = math.sqrt((5 * np.var(a, ddof=1) + 8 * np.var(b, ddof=1)) / df)
    exact = math.gamma(df / 2) / (math.sqrt(df / 2) * math.gamma((df - 1) / 2))
    assert hedges_g(a, b) == pytest.approx(exact * (np.mean(b) - np.mean(a)) / pooled, rel=2e-3)
    assert hedges_g([1.0, 1.0], [1.0, 1.0]) == 0.0 and hedges_g([1.0, 1.0], [2.0, 2.0]) == math.inf


def test_bootstrap_ci_is_reproducible_and_agrees_with_scipy() -> None:
    a, b = _draw(5, 0.80, 0.02, 10), _draw(6, 0.83, 0.02, 10)
    first = bootstrap_difference(a, b)
    assert first == bootstrap_difference(a, b)  # fixed seed: the same numbers every time
    assert first != bootstrap_difference(a, b, seed=1)
    reference = scipy.stats.bootstrap(
        (b, a), lambda x, y, axis=-1: np.mean(x, axis=axis) - np.mean(y, axis=axis), method="percentile",
        n_resamples=10_000, rng=np.random.default_rng(123),
    ).confidence_interval
    width = reference.high - reference.low
    assert first[0] == pytest.approx(reference.low, abs=0.05 * width)
    assert first[1] == pytest.approx(reference.high, abs=0.05 * width)


def test_verdicts_for_a_clear_win_a_clear_loss_and_no_difference() -> None:
    base = _draw(10, 0.900, 0.004, 6)
    win = compare_samples(base, _draw(11, 0.930, 0.004, 6), mode="max", metric="val/acc", label_a="A", label_b="B")
    assert win.better == "b" and win.p < 1e-4 and win.g > 3
    assert win.verdict().startswith(f"B is better than A by {abs(win.improvement):.3g} ± {win.se:.3g} val/acc (95% CI ")
    assert win.verdict().endswith(f"), p<0.0001, g={win.g:.2g}, n=6 vs 6")
    assert 0.02 < win.ci_low < win.improvement < win.ci_high < 0.04

    losses = compare_samples(_draw(12, 0.30, 0.01, 5), _draw(13, 0.36, 0.01, 5), mode="min", metric="val/loss")
    assert losses.better == "a" and losses.improvement < 0 and losses.g < 0
    assert losses.verdict().startswith("B is worse than A by 0.0")
    assert "n=5 vs 5" in losses.verdict() and losses.warnings == []

    same = compare_samples(_draw(14, 0.9, 0.01, 5), _draw(15, 0.9, 0.01, 5), mode="max", metric="val/acc")
    assert same.better is None and same.p > 0.05
    assert same.verdict().startswith("no significant difference in val/acc between A and B (B ")
    assert same.ci_low < 0 < same.ci_high


def test_too_few_runs_are_refused_and_few_are_warned_about() -> None:
    with pytest.raises(InvalidArgumentError, match="baseline has 1 run.*at least 2 per side"):
        compare_samples([0.9], [0.91, 0.92], mode="max", label_a="baseline")
    with pytest.raises(InvalidArgumentError, match="non-finite"):
        compare_samples([0.9, math.nan], [0.91, 0.92], mode="max")
    few = compare_samples([0.90, 0.91, 0.92], [0.93, 0.94, 0.95], mode="max")
    assert few.warnings and "n=3 vs 3" in few.warnings[0]


configs = st.dictionaries(
    st.text("abcdefgh", min_size=1, max_size=4),
    st.fixed_dictionaries({}, optional={"lr": st.sampled_from([0.1, 0.01]), "width": st.sampled_from([32, 64]),
                                        "seed": st.integers(0, 3), "training.seed": st.integers(0, 3)}),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(configs, st.randoms(use_true_random=False))
def test_grouping_ignores_run_order_and_merges_exactly_what_differs_only_in_ignored_keys(params, rng) -> None:  # noqa: ANN001
    as_sets = lambda groups: {frozenset(ids) for ids in groups.values()}  # noqa: E731
    shuffled = list(params.items())
    rng.shuffle(shuffled)
    assert as_sets(group_params(dict(shuffled))) == as_sets(group_params(params))
    grouped = group_params(params, ignore=["seed"])
    finer = group_params(params, ignore=[])
    same_group = {run: label for label, ids in grouped.items() for run in ids}
    for x in params:
        for y in params:
            rest = lambda p: {k: v for k, v in p.items() if k != "seed"}  # noqa: E731
            assert (same_group[x] == same_group[y]) == (rest(params[x]) == rest(params[y]))
    assert all(any(ids <= coarse for coarse in as_sets(grouped)) for ids in as_sets(finer))  # only merges
    default = group_params(params)  # the seed keys, both spellings
    assert len(default) == len({tuple(sorted((k, v) for k, v in p.items() if "seed" not in k)) for p in params.values()})
