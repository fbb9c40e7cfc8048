"""``runpoint check RUN --against BASELINE``: a regression gate for CI pipelines (exit 0 ok, 1 worse, 2 bad input)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Annotated, Optional

import typer

from .. import query
from ..errors import InvalidArgumentError, RunpointError
from ..query.groups import DEFAULT_IGNORE, metric_mode, metric_values
from ..query.selectors import is_selector, select_runs
from ..store import RunRecord, Store
from ._output import RootOption, console, fail, fmt_number, print_json

BAD_INPUT = 2
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


def parse_tolerance(text: str | None) -> float:
    """``"0.5%"`` -> 0.005 (a fraction of the baseline); a bare number is refused as ambiguous."""
    if text is None:
        return 0.0
    match = _PERCENT.match(text)
    if not match:
        raise InvalidArgumentError(
            "tolerance", f"{text!r}: write a percentage of the baseline such as 0.5%, "
            "or give an absolute margin with --tolerance-abs 0.01")
    return float(match.group(1)) / 100


@dataclass(frozen=True)
class CheckResult:
    """The run's value against the baseline's, with the margin allowed and the threshold it makes."""

    metric: str
    mode: str
    value: float
    baseline: float
    margin: float
    margin_text: str
    threshold: float
    n_run: int
    n_baseline: int

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.mode == "max" else self.value <= self.threshold

    def line(self) -> str:
        """``FAIL val/acc 0.912 < baseline 0.925 - 0.5% (0.920)`` or ``ok val/acc 0.93 >= ...``."""
        if self.mode == "max":
            op = ">=" if self.passed else "<"
            sign = "-"
        else:
            op = "<=" if self.passed else ">"
            sign = "+"
        value = _n(self.value) + (f" (mean of {self.n_run})" if self.n_run > 1 else "")
        baseline = _n(self.baseline) + (f" (mean of {self.n_baseline})" if self.n_baseline > 1 else "")
        margin = f" {sign} {self.margin_text} ({_n(self.threshold)})" if self.margin else ""
        return f"{'ok' if self.passed else 'FAIL'} {self.metric} {value} {op} baseline {baseline}{margin}"


def _n(value: float) -> str:
    return fmt_number(float(f"{value:.4g}"))


def evaluate(store: Store, run: list[RunRecord], baseline: list[RunRecord], metric: str, *,
             relative: float, absolute: float, which: str, mode: str | None) -> CheckResult:
    """Compare the mean ``which`` value of ``run`` to ``baseline``'s, allowing the larger of the two margins."""
    if relative < 0 or absolute < 0 or not math.isfinite(absolute):
        raise InvalidArgumentError("tolerance", "must be a finite amount of 0 or more")
    direction = metric_mode(store, run + baseline, metric, mode)
    ours = metric_values(store, run, metric, which, direction)  # type: ignore[arg-type]
    theirs = metric_values(store, baseline, metric, which, direction)  # type: ignore[arg-type]
    value, reference = math.fsum(ours) / len(ours), math.fsum(theirs) / len(theirs)
    by_fraction = relative * abs(reference)
    margin = max(by_fraction, absolute)
    if relative and absolute:
        text = f"{relative * 100:g}%" if by_fraction >= absolute else fmt_number(absolute)
    else:
        text = f"{relative * 100:g}%" if relative else fmt_number(absolute)
    threshold = reference - margin if direction == "max" else reference + margin
    name = metric if which == "final" else f"best {metric}"
    return CheckResult(name, direction, value, reference, margin, text, threshold, len(ours), len(theirs))


def _runs(store: Store, text: str) -> list[RunRecord]:
    return select_runs(store, text, ignore=DEFAULT_IGNORE) if is_selector(text) else [query.resolve_run(store, text)]


def check(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="The run to check: id, name, or several (id1,id2 / tag:NAME / cfg:HASH).",
                                           show_default=False)],
    against: Annotated[str, typer.Option("--against", help="The baseline: a run, or several runs (their mean).",
                                         show_default=False)],
    metric: Annotated[str, typer.Option("--metric", "-m", help="The metric to compare, e.g. val/acc.", show_default=False)],
    tolerance: Annotated[Optional[str], typer.Option("--tolerance", help="Allowed drop as a percentage of the baseline, e.g. 0.5%.")] = None,
    tolerance_abs: Annotated[float, typer.Option("--tolerance-abs", help="Allowed drop in the metric's units, e.g. 0.01 (with --tolerance: the larger).")] = 0.0,
    which: Annotated[str, typer.Option("--which", help="final (last logged value) or best.")] = "final",
    mode: Annotated[Optional[str], typer.Option("--mode", help="max or min: which way is better (default: from run.monitor or the name).")] = None,
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Exit 0 when RUN is not worse than BASELINE beyond the tolerance, 1 when it is, 2 on bad input.

    Prints one line (FAIL val/acc 0.912 < baseline 0.925 - 0.5% (0.920)); in GitHub Actions the
    line is added to the job summary too. Several runs a side compare their means.
    """
    try:
        if which not in ("final", "best"):
            raise InvalidArgumentError("which", f"must be final or best, got {which!r}")
        store = query.open_root(root)
        result = evaluate(store, _runs(store, run_ref), _runs(store, against), metric, relative=parse_tolerance(tolerance),
                          absolute=tolerance_abs, which=which, mode=mode)
    except RunpointError as exc:
        raise fail(str(exc).splitlines()[0], BAD_INPUT) from None
    if as_json:
        print_json({"passed": result.passed, "line": result.line(), "metric": result.metric, "mode": result.mode,
                    "value": result.value, "baseline": result.baseline, "threshold": result.threshold,
                    "n": result.n_run, "n_baseline": result.n_baseline})
    else:
        console.print(result.line(), markup=False, soft_wrap=True)
    _github_summary(result)
    if not result.passed:
        raise typer.Exit(1)


def _github_summary(result: CheckResult) -> None:
    """Append the line to GitHub Actions' job summary when running there (best effort)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return
    mark = "✅" if result.passed else "❌"
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(f"{mark} `runpoint check`: {result.line()}\n")
    except OSError:
        pass  # the summary is a courtesy; the exit status is what gates


def register(app: typer.Typer) -> None:
    app.command("check")(check)
