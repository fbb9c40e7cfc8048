"""Accelerate: a tracker for ``Accelerator(log_with=...)``.

Only the main process records (Accelerate calls the tracker there alone), so a job of N
processes makes one run. The run starts when Accelerate hands over the config
(``accelerator.init_trackers(..., config=...)``) or at the first ``accelerator.log``;
``accelerator.end_training()`` finishes it. Numbers are logged as metrics; strings
Accelerate passes to ``log`` go to the run's summary.

Example::

    from accelerate import Accelerator
    from runpoint.integrations.accelerate import RunpointTracker

    accelerator = Accelerator(log_with=RunpointTracker(project="digits"))
    accelerator.init_trackers("digits", config={"lr": 3e-4})
    for step, batch in enumerate(loader):
        ...
        accelerator.log({"train/loss": loss.item()}, step=step)
    accelerator.end_training()
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

from .._util.optional import require
from ..run.run import Run
from ..store.base import RunStatus
from ._common import add_params, split_values

__all__ = ["RunpointTracker"]

tracking = require("accelerate.tracking", "accelerate", "runpoint.integrations.accelerate")


_TrackerBase: Any = tracking.GeneralTracker  # a base class from a module imported at run time


class RunpointTracker(_TrackerBase):
    """An Accelerate tracker that records into runpoint.

    Args:
        project: the runpoint project.
        name, tags, notes, root, sinks: passed to :func:`runpoint.init`.
        run: record into this run instead of starting one (it is then not finished here).
    """

    name = "runpoint"
    requires_logging_directory = False
    main_process_only = True

    def __init__(
        self,
        project: str = "accelerate",
        *,
        name: str | None = None,
        tags: Iterable[str] = (),
        notes: str = "",
        root: str | os.PathLike[str] | None = None,
        sinks: Sequence[Any] | None = None,
        run: Run | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.init_kwargs: dict[str, Any] = dict(name=name, tags=tuple(tags), notes=notes, root=root, sinks=sinks)
        self._run = run
        self._owns_run = run is None

    @property
    def tracker(self) -> Run:
        """The run (started on first use)."""
        return self._ensure_run()

    @tracking.on_main_process
    def store_init_configuration(self, values: dict[str, Any]) -> None:
        if self._run is None:
            self._ensure_run(config=values)
        else:
            add_params(self._run, values)

    @tracking.on_main_process
    def log(self, values: dict[str, Any], step: int | None = None, **kwargs: Any) -> None:
        run = self._ensure_run()
        metrics, others = split_values(values)
        if metrics:
            run.log(metrics, step=step)
        for key, value in others.items():
            run.summary[key] = value if isinstance(value, (str, bool, int, float)) else str(value)

    @tracking.on_main_process
    def finish(self) -> None:
        if self._run is not None and self._owns_run:
            self._run.finish(RunStatus.COMPLETED)

    def _ensure_run(self, config: dict[str, Any] | None = None) -> Run:
        if self._run is None:
            from ..run.start import init

            self._run = init(project=self.project, config=config, distributed=False, **self.init_kwargs)
        return self._run
