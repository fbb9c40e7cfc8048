"""``runpoint compare --group-by config`` (seeds grouped, mean ± std and CI) and ``compare A B --test``."""

from __future__ import annotations

import math
from typing import Sequence

from rich.markup import escape
from rich.table import Table

from ..errors import InvalidArgumentError
from ..query.groups import (
    GroupedRuns,
    GroupMetric,
    RunGroup,
    metric_mode,
    metric_values,
)
from ..query.selectors import select_runs
from ..query.stats import SampleComparison, Summary, compare_samples
from ..store import RunRecord, Store
from ._output import console, err_console, fmt_number, print_json
from ._tables import print_table


def fmt_summary(summary: Summary | None) -> tuple[str, str]:
    """``("0.912 ± 0.004", "0.907 to 0.917")`` (std and CI need 2 runs: ``-``)."""
    if summary is None or summary.n == 0:
        return "-", "-"
    if summary.n == 1:
        return fmt_number(summary.mean), "-"
    return (f"{_short(summary.mean)} ± {_short(summary.std)}", f"{_short(summary.ci_low)} to {_short(summary.ci_high)}")


def _short(value: float) -> str:
    return fmt_number(float(f"{value:.4g}")) if math.isfinite(value) else fmt_number(value)


def print_groups(grouped: GroupedRuns, as_json: bool) -> None:
    """Each group's config, runs and metric table; first the keys that tell the groups apart."""
    if as_json:
        print_json(grouped.to_dict())
        return
    ignored = ", ".join(grouped.ignore) or "nothing"
    if len(grouped.groups) > 1 and grouped.differing:
        console.print(f"[bold]{len(grouped.groups)} groups[/] (ignoring {escape(ignored)}), differing in: "
                      + ", ".join(escape(key) for key in grouped.differing))
    elif len(grouped.groups) > 1:
        console.print(f"[bold]{len(grouped.groups)} groups[/] (ignoring {escape(ignored)})")
    else:
        console.print(f"[bold]1 group[/]: the configs agree on everything but {escape(ignored)}")
    for group in grouped.groups:
        console.print()
        _print_group(group, list(grouped.differing))


def _print_group(group: RunGroup, differing: list[str]) -> None:
    described = " ".join(f"{escape(key)}={escape(fmt_number(group.params.get(key)))}" for key in differing)
    console.print(f"[bold cyan]{group.label}[/]  n={group.n}  {described}".rstrip())
    console.print("  runs: " + ", ".join(f"{run.id} ({escape(run.name)})" for run in group.runs), soft_wrap=True)
    for key, values in group.ignored.items():
        console.print(f"  {escape(key)}: " + ", ".join(escape(fmt_number(v)) for v in values), soft_wrap=True)
    if not group.metrics:
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("METRIC", "FINAL mean ± std", "FINAL 95% CI", "BEST mean ± std", "BEST 95% CI", "N"):
        table.add_column(heading, justify="left" if heading == "METRIC" else "right", no_wrap=heading != "METRIC")
    for key, metric in group.metrics.items():
        table.add_row(escape(key) + _direction(metric), *fmt_summary(metric.final), *fmt_summary(metric.best),
                      _count(metric, group.n))
    print_table(console, table)


def _direction(metric: GroupMetric) -> str:
    return {"min": " ↓", "max": " ↑"}.get(metric.mode or "", "")


def _count(metric: GroupMetric, n: int) -> str:
    return str(metric.final.n) if not metric.missing else f"{metric.final.n} of {n}"


def sides(store: Store, refs: Sequence[str], a: str | None, b: str | None,
          ignore: Sequence[str]) -> tuple[tuple[str, list[RunRecord]], tuple[str, list[RunRecord]]]:
    """The two run sets of ``--test``: ``--a``/``--b``, or exactly two positional selectors."""
    if (a is None) != (b is None):
        raise InvalidArgumentError("runs", "give both --a and --b")
    if a is not None and b is not None:
        if refs:
            raise InvalidArgumentError("runs", "give the two sides either as --a/--b or as two arguments, not both")
        chosen = [a, b]
    elif len(refs) == 2:
        chosen = list(refs)
    else:
        raise InvalidArgumentError(
            "runs", f"--test compares two sets of runs, got {len(refs)} argument(s): give A and B "
            "(each a run, 'id1,id2,...', tag:NAME, config:KEY=VALUE or cfg:HASH), or --a and --b")
    first, second = (select_runs(store, text, ignore=ignore) for text in chosen)
    overlap = {run.id for run in first} & {run.id for run in second}
    if overlap:
        raise InvalidArgumentError("runs", f"A and B share run(s) {', '.join(sorted(overlap))}: a run can be on one side only")
    return (chosen[0], first), (chosen[1], second)


def run_tests(
    store: Store, side_a: tuple[str, list[RunRecord]], side_b: tuple[str, list[RunRecord]],
    metrics: Sequence[str], which: str, mode: str | None,
) -> list[SampleComparison]:
    """One Welch test per metric; refusals (too few runs, a run without the metric) raise."""
    if not metrics:
        raise InvalidArgumentError("metric", "--test needs the metric to compare: --metric val/acc")
    (label_a, runs_a), (label_b, runs_b) = side_a, side_b
    results = []
    for key in metrics:
        direction = metric_mode(store, runs_a + runs_b, key, mode)
        values_a = metric_values(store, runs_a, key, which, direction)  # type: ignore[arg-type]
        values_b = metric_values(store, runs_b, key, which, direction)  # type: ignore[arg-type]
        name = key if which == "final" else f"best {key}"
        results.append(compare_samples(values_a, values_b, mode=direction, metric=name, label_a=label_a, label_b=label_b))
    return results


def print_tests(results: list[SampleComparison], runs: dict[str, list[RunRecord]], as_json: bool) -> None:
    """The verdict of each test on stdout (a table of both sides above it), warnings on stderr."""
    if as_json:
        print_json({"tests": [r.to_dict() for r in results],
                    "runs": {label: [run.id for run in members] for label, members in runs.items()}})
        return
    for result in results:
        for warning in result.warnings:
            err_console.print(f"runpoint: warning: {warning}", markup=False)
        table = Table(box=None, header_style="bold", pad_edge=False)
        for heading in ("", "N", f"{result.metric} mean ± std", "95% CI"):
            table.add_column(heading, justify="left" if not heading else "right", no_wrap=True)
        for label, summary in ((result.label_a, result.a), (result.label_b, result.b)):
            table.add_row(escape(label), str(summary.n), *fmt_summary(summary))
        print_table(console, table)
        console.print(_colored(result), soft_wrap=True)


def _colored(result: SampleComparison) -> str:
    style = {"b": "green", "a": "red", None: "yellow"}[result.better]
    return f"[{style}]{escape(result.verdict())}[/]"

