"""Statistics over repeated runs: mean ± std with a t confidence interval, and "is B better than A".

- :func:`summarize` gives n, mean, sample standard deviation and a confidence interval of
  the mean from Student's t distribution (a handful of seeds is far from the normal limit);
- :func:`compare_samples` runs Welch's t-test (no equal-variance assumption), a bootstrap
  confidence interval of the difference of means (fixed seed: the same numbers every time),
  Hedges' g, and words it in the metric's direction (:meth:`SampleComparison.verdict`).

numpy and scipy are imported when called (``pip install 'runpoint[stats]'``).

Example::

    result = compare_samples([0.91, 0.92, 0.90], [0.93, 0.94, 0.95], mode="max", metric="val/acc")
    print(result.verdict())  # B is better than A by 0.03 ± 0.00816 val/acc (95% CI 0.0167 to 0.0433), p=0.021, g=2.4, n=3 vs 3
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Sequence

from ..errors import InvalidArgumentError, MissingDependencyError

Mode = Literal["min", "max"]
MIN_PER_SIDE = 2  # below this there is no variance to test with
FEW_PER_SIDE = 5  # below this a test has little power: say so
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


def t_quantile(p: Any, df: Any) -> Any:
    """Student's t quantile (scipy.special, a fraction of scipy.stats' import time)."""
    return _scipy_special().stdtrit(df, p)


def _scipy_special() -> Any:
    try:
        import scipy.special
    except ImportError:
        raise MissingDependencyError("scipy", "stats", "statistics over runs") from None
    return scipy.special


def numpy_module() -> Any:
    try:
        import numpy
    except ImportError:
        raise MissingDependencyError("numpy", "stats", "statistics over runs") from None
    return numpy


@dataclass(frozen=True)
class Summary:
    """n, mean, sample std (ddof=1) and the confidence interval of the mean (NaN below 2 values)."""

    n: int
    mean: float
    std: float
    ci_low: float
    ci_high: float
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """The mean of ``values`` with its t-distribution confidence interval.

    Example::

        summarize([1.0, 2.0, 3.0]).ci_high  # 2 + t(0.975, 2) * 1 / sqrt(3) = 4.484
    """
    if not 0.0 < confidence < 1.0:
        raise InvalidArgumentError("confidence", f"must be in (0, 1), got {confidence!r}")
    n = len(values)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan, confidence)
    mean = math.fsum(values) / n
    if n == 1:
        return Summary(1, mean, math.nan, math.nan, math.nan, confidence)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(t_quantile(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class SampleComparison:
    """Welch's t-test, a bootstrap CI and Hedges' g of B against A, in the metric's direction.

    ``improvement`` is how much better B is than A (``mean_b - mean_a`` when higher is
    better, ``mean_a - mean_b`` when lower is): positive means B is better. ``ci_low`` /
    ``ci_high`` (bootstrap) and ``g`` are on the same scale and sign.
    """

    metric: str
    mode: Mode
    a: Summary
    b: Summary
    label_a: str
    label_b: str
    improvement: float
    se: float  # standard error of the difference (Welch)
    t: float
    df: float
    p: float
    ci_low: float
    ci_high: float
    g: float
    alpha: float = 0.05
    resamples: int = BOOTSTRAP_RESAMPLES
    warnings: list[str] = field(default_factory=list)

    @property
    def significant(self) -> bool:
        return self.p < self.alpha

    @property
    def better(self) -> Literal["a", "b"] | None:
        """Which side is significantly better, or None."""
        if not self.significant or self.improvement == 0:
            return None
        return "b" if self.improvement > 0 else "a"

    def verdict(self) -> str:
        """One plain sentence: who is better, by how much, how sure, on how many runs."""
        level = f"{round((1 - self.alpha) * 100):g}%"
        tail = f"p{_p(self.p)}, g={_num(self.g, 2)}, n={self.a.n} vs {self.b.n}"
        size = f"{_num(abs(self.improvement))} ± {_num(self.se)}"
        if self.better == "b":
            return (f"{self.label_b} is better than {self.label_a} by {size} {self.metric} "
                    f"({level} CI {_num(self.ci_low)} to {_num(self.ci_high)}), {tail}")
        if self.better == "a":
            return (f"{self.label_b} is worse than {self.label_a} by {size} {self.metric} "
                    f"({level} CI {_num(-self.ci_high)} to {_num(-self.ci_low)}), {tail}")
        lead = "ahead" if self.improvement >= 0 else "behind"
        return (f"no significant difference in {self.metric} between {self.label_a} and {self.label_b} "
                f"({self.label_b} {lead} by {size}, {level} CI of the gain {_num(self.ci_low)} to "
                f"{_num(self.ci_high)}), {tail}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(significant=self.significant, better=self.better, verdict=self.verdict())
        return data


def _num(value: float, digits: int = 3) -> str:
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}g}"


def _p(p: float) -> str:
    if p < 1e-4:
        return "<0.0001"
    return "=" + (f"{p:.2g}" if p < 0.01 else f"{p:.3f}".rstrip("0").rstrip("."))


def welch(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """``(mean_b - mean_a, its standard error, t, Welch-Satterthwaite df)``."""
    sa, sb = summarize(a), summarize(b)
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    diff = sb.mean - sa.mean
    se = math.sqrt(va + vb)
    if se == 0.0:
        return diff, 0.0, (0.0 if diff == 0 else math.copysign(math.inf, diff)), float(sa.n + sb.n - 2)
    df = (va + vb) ** 2 / (va**2 / (sa.n - 1) + vb**2 / (sb.n - 1))
    return diff, se, diff / se, df


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Standardised ``mean_b - mean_a`` (pooled std), corrected for small samples."""
    sa, sb = summarize(a), summarize(b)
    pooled = math.sqrt(((sa.n - 1) * sa.std**2 + (sb.n - 1) * sb.std**2) / (sa.n + sb.n - 2))
    diff = sb.mean - sa.mean
    if pooled == 0.0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return (1 - 3 / (4 * (sa.n + sb.n) - 9)) * diff / pooled


def bootstrap_difference(
    a: Sequence[float], b: Sequence[float], *, confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``mean_b - mean_a``, each side resampled on its own."""
    np = numpy_module()
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    means_a = xa[rng.integers(0, len(xa), size=(resamples, len(xa)))].mean(axis=1)
    means_b = xb[rng.integers(0, len(xb), size=(resamples, len(xb)))].mean(axis=1)
    low, high = np.quantile(means_b - means_a, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def compare_samples(
    a: Sequence[float], b: Sequence[float], *, mode: Mode, metric: str = "metric",
    label_a: str = "A", label_b: str = "B", alpha: float = 0.05,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
) -> SampleComparison:
    """Is B better than A? Refuses fewer than 2 values a side; warns below 5.

    Example::

        compare_samples(losses_a, losses_b, mode="min", metric="val/loss").verdict()
    """
    if mode not in ("min", "max"):
        raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {mode!r}")
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError("alpha", f"must be in (0, 1), got {alpha!r}")
    for label, values in ((label_a, a), (label_b, b)):
        if len(values) < MIN_PER_SIDE:
            raise InvalidArgumentError(
                "runs", f"{label} has {len(values)} run(s) with {metric}; a test needs at least "
                f"{MIN_PER_SIDE} per side (5 or more to be worth much): run more seeds")
        bad = [v for v in values if not math.isfinite(v)]
        if bad:
            raise InvalidArgumentError("runs", f"{label} has non-finite {metric} values: {bad}")
    warnings = []
    if min(len(a), len(b)) < FEW_PER_SIDE:
        warnings.append(f"few runs (n={len(a)} vs {len(b)}): the test has little power below "
                        f"{FEW_PER_SIDE} per side; a real difference may go unseen")
    diff, se, t, df = welch(a, b)
    p = 2 * float(_scipy_special().stdtr(df, -abs(t))) if math.isfinite(t) else (0.0 if t else 1.0)
    low, high = bootstrap_difference(a, b, confidence=1 - alpha, resamples=resamples, seed=seed)
    g = hedges_g(a, b)
    sign = 1.0 if mode == "max" else -1.0
    if sign < 0:
        low, high = -high, -low
    return SampleComparison(
        metric=metric, mode=mode, a=summarize(a, 1 - alpha), b=summarize(b, 1 - alpha), label_a=label_a,
        label_b=label_b, improvement=sign * diff, se=se, t=sign * t, df=df, p=min(1.0, p), ci_low=low,
        ci_high=high, g=sign * g, alpha=alpha, resamples=resamples, warnings=warnings,
    )
