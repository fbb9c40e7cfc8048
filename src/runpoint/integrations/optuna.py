"""Optuna: every trial a runpoint run, grouped by study.

Each trial's run has the study name as its group (``runpoint ls --group STUDY``,
``runpoint compare --group STUDY``), the trial's params as config, the objective as a
metric and in the summary, the values reported for pruning as the metric
``optuna/intermediate`` at their steps, and a status from the trial's state: complete
-> ``completed``, pruned -> ``completed`` with the tag ``pruned``, fail -> ``failed``.

Example::

    from runpoint.integrations.optuna import RunpointCallback

    tracker = RunpointCallback(project="digits")

    @tracker.track_in_runpoint()          # optional: the run exists while the trial trains
    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        for epoch in range(10):
            acc = train_one_epoch(lr)
            tracker.run.log({"val/acc": acc}, step=epoch)
            trial.report(acc, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return acc

    study = optuna.create_study(study_name="lr-sweep", direction="maximize")
    study.optimize(objective, n_trials=20, callbacks=[tracker])
"""

from __future__ import annotations

import functools
import os
import threading
from typing import Any, Callable, Iterable, Mapping, Sequence

from .._util.optional import require
from ..run.run import Run
from ..store.base import RunStatus
from ._common import add_params

__all__ = ["RunpointCallback"]

optuna = require("optuna", "optuna", "runpoint.integrations.optuna")

INTERMEDIATE_KEY = "optuna/intermediate"


class RunpointCallback:
    """Records Optuna trials as runpoint runs; pass it in ``study.optimize(callbacks=[...])``.

    Args:
        project: the runpoint project of the trials' runs.
        metric_name: name of the objective in runpoint. For a multi-objective study, a list
            of one name per objective; one name is numbered (``objective_0``,
            ``objective_1``...), as Optuna's own MLflow callback does.
        config: config shared by every trial (the trial's params are added to it).
        tags, root, sinks: passed to :func:`runpoint.init` for each trial's run.
    """

    def __init__(
        self,
        project: str,
        *,
        metric_name: str | Sequence[str] = "objective",
        config: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        root: str | os.PathLike[str] | None = None,
        sinks: Sequence[Any] | None = None,
    ) -> None:
        self.project = project
        self.metric_names = [metric_name] if isinstance(metric_name, str) else list(metric_name)
        self._numbered = isinstance(metric_name, str)  # one name: numbered for several objectives
        self.config = dict(config or {})
        self.tags = tuple(tags)
        self.root = root
        self.sinks = sinks
        self._open: dict[tuple[str, int], Run] = {}  # (study, trial number) -> run started by track_in_runpoint
        self._done: set[tuple[str, int]] = set()  # trials whose runs the decorator already finished
        self._local = threading.local()

    @property
    def run(self) -> Run:
        """The run of the trial this thread evaluates (inside a ``track_in_runpoint`` objective)."""
        run = getattr(self._local, "run", None)
        if run is None:
            raise RuntimeError("RunpointCallback.run is only available inside an objective decorated with track_in_runpoint()")
        return run

    def track_in_runpoint(self) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
        """Decorate an objective so that its trial's run exists while it trains."""

        def decorator(objective: Callable[[Any], Any]) -> Callable[[Any], Any]:
            @functools.wraps(objective)
            def wrapped(trial: Any) -> Any:
                key = (trial.study.study_name, trial.number)
                run = self._start(*key, {})
                self._open[key] = self._local.run = run
                try:
                    return objective(trial)
                except optuna.TrialPruned:
                    raise  # recorded by __call__ with the trial's final state
                except BaseException as exc:
                    # finished here, with the error: Optuna does not pass it to callbacks,
                    # and calls them only for exceptions it was told to catch
                    self._open.pop(key, None)
                    self._done.add(key)
                    add_params(run, trial.params)
                    run.finish(RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
                    raise
                finally:
                    self._local.run = None

            return wrapped

        return decorator

    def __call__(self, study: Any, trial: Any) -> None:
        key = (study.study_name, trial.number)
        if key in self._done:
            self._done.discard(key)
            return
        run = self._open.pop(key, None)
        if run is None:
            run = self._start(study.study_name, trial.number, trial.params)
        else:
            add_params(run, trial.params)
        for step, value in sorted(trial.intermediate_values.items()):
            run.log({INTERMEDIATE_KEY: value}, step=step)
        if trial.values is not None:
            try:
                values = dict(zip(self._names_for(len(trial.values)), trial.values, strict=True))
            except ValueError as exc:
                run.finish(RunStatus.FAILED, error=str(exc))
                raise
            run.log(values, step=max(trial.intermediate_values, default=run.step))
            for metric, value in values.items():
                run.summary[metric] = value
        state = trial.state.name
        run.summary["optuna/state"] = state
        run.summary["optuna/trial"] = trial.number
        if trial.duration is not None:
            run.summary["optuna/duration_s"] = trial.duration.total_seconds()
        if state == "PRUNED":
            run.add_params({}, ("pruned",))
        if state == "FAIL":
            run.finish(RunStatus.FAILED, error="the Optuna trial failed (track_in_runpoint() records the exception)")
        else:
            run.finish(RunStatus.COMPLETED)

    def _names_for(self, objectives: int) -> list[str]:
        if self._numbered and objectives > 1:
            return [f"{self.metric_names[0]}_{index}" for index in range(objectives)]
        if len(self.metric_names) != objectives:
            raise ValueError(
                f"the study has {objectives} objective values but RunpointCallback got "
                f"{len(self.metric_names)} metric names {self.metric_names}: give one name per objective, "
                "or a single name to have them numbered"
            )
        return self.metric_names

    def _start(self, study_name: str, number: int, params: Mapping[str, Any]) -> Run:
        from ..run.start import init

        return init(
            project=self.project, name=f"{study_name}-trial-{number}", group=study_name,
            config={**self.config, **params, "optuna": {"study": study_name, "trial": number}},
            tags=self.tags, root=self.root, sinks=self.sinks, console=False,
        )
