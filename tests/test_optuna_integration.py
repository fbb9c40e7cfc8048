"""Optuna studies recorded as runpoint runs: one run per trial, grouped by the study."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import runpoint as rp
from runpoint.store.sqlite import SQLiteStore

from .conftest import cli

optuna = pytest.importorskip("optuna")
from runpoint.integrations.optuna import INTERMEDIATE_KEY, RunpointCallback  # noqa: E402


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_each_trial_becomes_a_run_with_params_objective_and_state(root: Path) -> None:
    tracker = RunpointCallback(project="hpo", config={"model": "mlp"}, root=root)

    def objective(trial):
        x = trial.suggest_float("x", -10, 10)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        for step in range(3):
            trial.report((x - 2) ** 2 + step, step)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("diverged")
        return (x - 2) ** 2 + (kind == "b")

    study = optuna.create_study(study_name="quadratic", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=4, callbacks=[tracker], catch=(ValueError,))

    with SQLiteStore(root / "runpoint.db") as store:
        runs = sorted((r for r in store.list_runs() if r.group == "quadratic"), key=lambda r: r.name)
        assert [r.name for r in runs] == [f"quadratic-trial-{n}" for n in range(4)]
        for run, trial in zip(runs, study.trials):
            params = store.get_params(run.id)
            assert params["x"] == trial.params["x"] and params["kind"] == trial.params["kind"]
            assert params["model"] == "mlp" and params["optuna.study"] == "quadratic"
            assert params["optuna.trial"] == trial.number
            history = store.read_metric(run.id, INTERMEDIATE_KEY)
            assert list(history.steps) == [0, 1, 2]
            assert list(history.values) == [trial.intermediate_values[s] for s in range(3)]
            summary = store.get_summary(run.id)
            assert summary["optuna/state"] == trial.state.name
        completed = [runs[0], runs[3]]
        for run, trial in zip(completed, [study.trials[0], study.trials[3]]):
            assert run.status is rp.RunStatus.COMPLETED
            assert store.get_summary(run.id)["objective"] == trial.value
            assert store.read_metric(run.id, "objective").values.tolist() == [trial.value]
        assert runs[1].status is rp.RunStatus.COMPLETED and "pruned" in runs[1].tags
        assert runs[2].status is rp.RunStatus.FAILED and "trial failed" in runs[2].error


def test_track_in_runpoint_gives_the_objective_its_run_while_it_trains(root: Path) -> None:
    tracker = RunpointCallback(project="hpo", metric_name=["loss", "size"], root=root)
    seen = []

    @tracker.track_in_runpoint()
    def objective(trial):
        width = trial.suggest_int("width", 8, 64)
        run = tracker.run
        seen.append(run.id)
        for epoch in range(5):
            run.log({"train/loss": 1.0 / (epoch + 1) / width}, step=epoch)
        return 1.0 / width, float(width)

    study = optuna.create_study(study_name="multi", directions=["minimize", "minimize"])
    study.optimize(objective, n_trials=3, callbacks=[tracker])

    with SQLiteStore(root / "runpoint.db") as store:
        for run_id, trial in zip(seen, study.trials):
            run = store.get_run(run_id)
            assert run.group == "multi" and run.status is rp.RunStatus.COMPLETED
            assert store.get_params(run_id)["width"] == trial.params["width"]
            assert list(store.read_metric(run_id, "train/loss").steps) == list(range(5))
            summary = store.get_summary(run_id)
            assert (summary["loss"], summary["size"]) == tuple(trial.values)


def test_one_metric_name_is_numbered_for_every_objective_of_a_multi_objective_study(root: Path) -> None:
    tracker = RunpointCallback(project="hpo", root=root)  # the default single name, as Optuna's MLflowCallback numbers it

    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        return x, 1 - x

    study = optuna.create_study(study_name="pareto", directions=["minimize", "maximize"])
    study.optimize(objective, n_trials=2, callbacks=[tracker])

    with SQLiteStore(root / "runpoint.db") as store:
        runs = sorted((r for r in store.list_runs() if r.group == "pareto"), key=lambda r: r.name)
        assert len(runs) == 2
        for run, trial in zip(runs, study.trials):
            summary = store.get_summary(run.id)
            assert (summary["objective_0"], summary["objective_1"]) == tuple(trial.values)
            assert "objective" not in summary
            assert store.read_metric(run.id, "objective_1").values.tolist() == [trial.values[1]]


def test_metric_names_that_do_not_match_the_objectives_stop_the_study(root: Path) -> None:
    tracker = RunpointCallback(project="hpo", metric_name=["loss"], root=root)
    study = optuna.create_study(study_name="mismatch", directions=["minimize", "minimize"])
    with pytest.raises(ValueError, match=r"2 objective values but RunpointCallback got 1 metric names \['loss'\]"):
        study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), 1.0), n_trials=3, callbacks=[tracker])
    assert len(study.trials) == 1  # the first trial stopped the study
    with SQLiteStore(root / "runpoint.db") as store:
        (run,) = [r for r in store.list_runs() if r.group == "mismatch"]
        assert run.status is rp.RunStatus.FAILED and "give one name per objective" in run.error


@pytest.mark.parametrize("caught", [False, True])
def test_a_failing_objective_finishes_its_run_as_failed_with_the_error(root: Path, caught: bool) -> None:
    tracker = RunpointCallback(project="hpo", root=root)

    @tracker.track_in_runpoint()
    def objective(trial):
        trial.suggest_int("batch", 1, 4)
        tracker.run.log({"x": 1.0}, step=0)
        raise RuntimeError("out of memory")

    study = optuna.create_study(study_name="crashy")
    if caught:
        study.optimize(objective, n_trials=2, callbacks=[tracker], catch=(RuntimeError,))
    else:
        with pytest.raises(RuntimeError):
            study.optimize(objective, n_trials=2, callbacks=[tracker])
    with SQLiteStore(root / "runpoint.db") as store:
        runs = [r for r in store.list_runs() if r.group == "crashy"]
        assert len(runs) == (2 if caught else 1)  # one run per trial, never a second one from the callback
        for run in runs:
            assert run.status is rp.RunStatus.FAILED and run.error == "RuntimeError: out of memory"
            assert store.read_metric(run.id, "x").values.tolist() == [1.0]
            assert "batch" in store.get_params(run.id)


@pytest.mark.slow  # over 3 s of subprocesses on 2 cores: CI runs it after the default run
def test_ls_and_compare_group_by_study(root: Path) -> None:
    tracker = RunpointCallback(project="hpo", root=root)
    study = optuna.create_study(study_name="sweep-a", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(lambda t: t.suggest_float("lr", 0.0, 1.0), n_trials=3, callbacks=[tracker])
    other = optuna.create_study(study_name="sweep-b")
    other.optimize(lambda t: t.suggest_float("lr", 0.0, 1.0), n_trials=1, callbacks=[tracker])

    listed = json.loads(cli(root, "ls", "--group", "sweep-a", "--json").stdout)
    assert sorted(run["name"] for run in listed) == [f"sweep-a-trial-{n}" for n in range(3)]
    assert {run["group"] for run in listed} == {"sweep-a"}

    grouped = json.loads(cli(root, "ls", "--group-by", "group", "--json").stdout)
    assert {entry["key"]: entry["count"] for entry in grouped} == {"sweep-a": 3, "sweep-b": 1}

    result = cli(root, "compare", "--group", "sweep-a", "--json")
    assert result.returncode == 0, result.stderr
    compared = json.loads(result.stdout)
    assert [run["name"] for run in compared["runs"]] == [f"sweep-a-trial-{n}" for n in range(3)]
    assert compared["params_differing"]["lr"] == [t.params["lr"] for t in study.trials]
    assert compared["metrics_last"]["objective"] == [t.value for t in study.trials]

    table = cli(root, "compare", "--group", "sweep-a")
    assert table.returncode == 0 and "sweep-a-trial-2" in table.stdout
    missing = cli(root, "compare", "--group", "no-such-study")
    assert missing.returncode == 1 and "no runs in group 'no-such-study'" in missing.stderr
