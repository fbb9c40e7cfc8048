"""`runpoint compare --group-by config`, `compare A B --test` and `runpoint check`, as a user runs them.

Runs are written through the Store protocol (the same code for a root and for a team server),
with known final values, so every number printed can be checked against numpy/scipy here.
"""

from __future__ import annotations

import itertools
import json
import secrets
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest
import scipy.stats

from runpoint.store import (
    MetricSeries,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
    open_store,
)

from .conftest import cli


def run_in_process(root: Path | str, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in this process (typer's runner): the variants that need no fresh process, fast."""
    from typer.testing import CliRunner

    from runpoint.cli.main import app

    result = CliRunner().invoke(app, [*args, "--root", str(root)], env={"COLUMNS": "200"})
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

BASE = [0.900, 0.902, 0.898, 0.901, 0.899]
NEW = [0.930, 0.932, 0.929, 0.931, 0.928]
_clock = itertools.count(1_700_000_000)  # runs created in order: listed oldest first in that order


def add_run(store: Store, name: str, params: dict, tags: tuple[str, ...], final: float | None) -> str:  # type: ignore[type-arg]
    """A completed run whose val/acc ends at ``final`` after peaking 0.005 above it (its best)."""
    run_id = "r" + secrets.token_hex(5)
    created = float(next(_clock))
    store.create_run(RunRecord(id=run_id, project="p", name=name, status=RunStatus.COMPLETED, created_at=created,
                               heartbeat_at=created, dir=f"p/{run_id}", tags=tags))
    metrics = {"train/loss": MetricSeries(array("q", [0, 10]), array("d", [1.0, 0.5]), array("d", [1.0, 2.0]))}
    if final is not None:
        values = [final - 0.2, final + 0.005, final]  # the best (max) is 0.005 above the final value
        metrics["val/acc"] = MetricSeries(array("q", [0, 5, 10]), array("d", values), array("d", [1.0, 1.5, 2.0]))
    store.write(run_id, WriteBatch(metrics=metrics, params=params))
    return run_id


def add_seeds(store: Store) -> None:
    for seed, (base, new) in enumerate(zip(BASE, NEW)):
        add_run(store, f"base-{seed}", {"training.lr": 0.1, "training.seed": seed, "model": "cnn"}, ("baseline",), base)
        add_run(store, f"new-{seed}", {"training.lr": 0.2, "training.seed": seed, "model": "cnn"}, ("new",), new)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("seeds") / "runpoint"
    root.mkdir()
    store = open_store(root, create=True)
    add_seeds(store)
    add_run(store, "lonely", {"training.lr": 0.3, "model": "cnn"}, ("lonely",), 0.5)
    add_run(store, "no-acc", {"training.lr": 0.1, "training.seed": 9, "model": "cnn"}, ("broken",), None)
    store.close()
    return root


def _t_interval(values: list[float]) -> tuple[float, float]:
    return scipy.stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=scipy.stats.sem(values))


def test_group_by_config_summarizes_the_seeds_of_each_config(seeds: Path) -> None:
    result = cli(seeds, "compare", "tag:baseline", "tag:new", "--group-by", "config", "--metric", "val/acc", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ignore"] == ["seed", "training.seed"]
    assert data["differing"] == {"training.lr": [0.2, 0.1]} or data["differing"] == {"training.lr": [0.1, 0.2]}
    by_lr = {group["params"]["training.lr"]: group for group in data["groups"]}
    for lr, finals in ((0.1, BASE), (0.2, NEW)):
        group = by_lr[lr]
        assert group["n"] == 5 and group["ignored"] == {"training.seed": [0, 1, 2, 3, 4]}
        final = group["metrics"]["val/acc"]["final"]
        assert final["mean"] == pytest.approx(np.mean(finals)) and final["std"] == pytest.approx(np.std(finals, ddof=1))
        assert (final["ci_low"], final["ci_high"]) == pytest.approx(_t_interval(finals))
        assert group["metrics"]["val/acc"]["best"]["mean"] == pytest.approx(np.mean(finals) + 0.005)
    table = cli(seeds, "compare", "--group-by", "config", "--tag", "new", "-m", "val/acc")
    assert table.returncode == 0, table.stderr
    low, high = _t_interval(NEW)
    assert "1 group" in table.stdout and "n=5" in table.stdout and "training.seed: 0, 1, 2, 3, 4" in table.stdout
    assert f"{np.mean(NEW):.4g} ± {np.std(NEW, ddof=1):.4g}" in table.stdout
    assert f"{low:.4g} to {high:.4g}" in table.stdout
    everything = run_in_process(seeds, "compare", "--group-by", "config", "--ignore", "training.*", "--json")
    assert [g["n"] for g in json.loads(everything.stdout)["groups"]] == [12]  # every run but lr/seed alike


def test_test_says_b_is_better_refuses_too_few_runs_and_names_runs_without_the_metric(seeds: Path) -> None:
    tested = cli(seeds, "compare", "--a", "tag:baseline", "--b", "tag:new", "--metric", "val/acc", "--test", "--json")
    assert tested.returncode == 0, tested.stderr
    result = json.loads(tested.stdout)["tests"][0]
    reference = scipy.stats.ttest_ind(NEW, BASE, equal_var=False)
    assert result["better"] == "b" and result["p"] == pytest.approx(reference.pvalue)
    assert result["improvement"] == pytest.approx(np.mean(NEW) - np.mean(BASE))
    assert result["verdict"].startswith("tag:new is better than tag:baseline by 0.03 ± ")
    assert result["verdict"].endswith("n=5 vs 5")
    text = cli(seeds, "compare", "tag:new", "tag:baseline", "-m", "val/acc", "--test")
    assert text.returncode == 0 and "tag:baseline is worse than tag:new by 0.03 ± 0.001 val/acc" in text.stdout.replace("\n", " ")
    three = run_in_process(seeds, "compare", "base-0,base-1,base-2", "new-0,new-1,new-2", "-m", "val/acc", "--test")
    assert three.returncode == 0 and "warning: few runs (n=3 vs 3)" in three.stderr
    lonely = run_in_process(seeds, "compare", "tag:lonely", "tag:new", "-m", "val/acc", "--test")
    assert lonely.returncode == 1 and "tag:lonely has 1 run(s) with val/acc; a test needs at least 2" in lonely.stderr
    lacking = run_in_process(seeds, "compare", "base-0,no-acc", "tag:new", "-m", "val/acc", "--test")
    assert lacking.returncode == 1 and "1 run(s) have no finite val/acc:" in lacking.stderr and "(no-acc)" in lacking.stderr
    no_metric = run_in_process(seeds, "compare", "tag:baseline", "tag:new", "--test")
    assert no_metric.returncode == 1 and "--test needs the metric" in no_metric.stderr


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_check_exits_0_when_not_worse_1_when_worse_2_on_bad_input(seeds: Path, tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    ok = _check(seeds, "tag:new", "--against", "tag:baseline", "--metric", "val/acc", "--tolerance", "0.5%", GITHUB_STEP_SUMMARY=str(summary))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "ok val/acc 0.93 (mean of 5) >= baseline 0.9 (mean of 5) - 0.5% (0.8955)"
    worse = _check(seeds, "base-2", "--against", "new-2", "--metric", "val/acc", "--tolerance", "0.5%", GITHUB_STEP_SUMMARY=str(summary))
    assert worse.returncode == 1
    assert worse.stdout.strip() == "FAIL val/acc 0.898 < baseline 0.929 - 0.5% (0.9244)"
    assert summary.read_text().splitlines()[1].endswith("FAIL val/acc 0.898 < baseline 0.929 - 0.5% (0.9244)")
    forgiven = run_in_process(seeds, "check", "base-2", "--against", "new-2", "-m", "val/acc", "--tolerance", "1%", "--tolerance-abs", "0.04")
    assert forgiven.returncode == 0 and forgiven.stdout.startswith("ok val/acc 0.898 >= baseline 0.929 - 0.04 (0.889)")
    loss = run_in_process(seeds, "check", "new-0", "--against", "base-0", "-m", "train/loss", "--which", "best")
    assert loss.returncode == 0 and loss.stdout.startswith("ok best train/loss 0.5 <= baseline 0.5")
    for args, message in (
        (("--tolerance", "0.5"), "write a percentage"),
        (("--which", "worst"), "must be final or best"),
        (("--mode", "up"), "'min' or 'max'"),
    ):
        bad = run_in_process(seeds, "check", "new-0", "--against", "base-0", "-m", "val/acc", *args)
        assert bad.returncode == 2 and message in bad.stderr, (args, bad.stderr)
    assert run_in_process(seeds, "check", "nope", "--against", "base-0", "-m", "val/acc").returncode == 2
    missing = run_in_process(seeds, "check", "no-acc", "--against", "base-0", "-m", "val/acc")
    assert missing.returncode == 2 and "(no-acc)" in missing.stderr
    assert _check(seeds, "new-0", "--against", "base-0").returncode == 2  # no --metric: a usage error, in a real process


def _check(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = {**os.environ, "COLUMNS": "200", **env}
    environment.pop("RUNPOINT_ROOT", None)
    return subprocess.run([sys.executable, "-m", "runpoint", "check", *args, "--root", str(root)],
                          capture_output=True, text=True, env=environment, timeout=120)


def test_check_and_test_work_against_a_team_server(http_store_url: str) -> None:
    store = open_store(http_store_url)
    add_seeds(store)
    store.close()
    ok = _check(http_store_url, "tag:new", "--against", "tag:baseline", "-m", "val/acc")  # type: ignore[arg-type]
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok val/acc 0.93 (mean of 5) >= baseline 0.9 (mean of 5)")
    tested = run_in_process(http_store_url, "compare", "tag:baseline", "tag:new", "-m", "val/acc", "--test", "--json")
    assert json.loads(tested.stdout)["tests"][0]["better"] == "b"
