"""PyTorch Lightning: a ``Logger`` that records into runpoint.

``RunpointLogger`` starts the run on rank zero when Lightning first needs it, records
``save_hyperparameters()`` values as params, every logged metric at Lightning's global
step, and the best checkpoint of a ``ModelCheckpoint`` in the summary. Lightning's own
``.ckpt`` files land in the run's ``checkpoints/`` directory (the logger's ``save_dir``
is the root, its ``name`` the project, its ``version`` the run id). The run finishes
when ``fit`` ends (``completed``, or ``failed`` after an exception); a later
``trainer.test()`` continues it. Only rank zero records.

Example::

    import lightning as L
    from runpoint.integrations.lightning import RunpointLogger

    trainer = L.Trainer(max_epochs=10, logger=RunpointLogger(project="mnist"))
    trainer.fit(model, datamodule=dm)
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from argparse import Namespace
from typing import Any, Iterable, Mapping, Sequence

from .._optional import is_installed, require
from .._paths import resolve_root
from ..run import Run
from ..store.base import RunStatus
from ._common import add_params

# the unified `lightning` package, or the older standalone `pytorch_lightning`
_PACKAGE = "lightning.pytorch" if is_installed("lightning") or not is_installed("pytorch_lightning") else "pytorch_lightning"
pl = require(_PACKAGE, "lightning", "runpoint.integrations.lightning")
_loggers = importlib.import_module(f"{_PACKAGE}.loggers.logger")
rank_zero_only = importlib.import_module(f"{_PACKAGE}.utilities").rank_zero_only

_STATUS = {"success": RunStatus.COMPLETED, "failed": RunStatus.FAILED, "finished": RunStatus.KILLED}


_LoggerBase: Any = _loggers.Logger  # a base class from a module imported at run time


class RunpointLogger(_LoggerBase):
    """A Lightning logger backed by a runpoint run.

    Args:
        project: the runpoint project (Lightning's logger ``name``).
        name: the run's name; None: a generated one.
        config: config to start the run with; ``save_hyperparameters()`` values are added.
        tags, notes, root, sinks: passed to :func:`runpoint.init`.
        run: record into this run instead of starting one (it is then not finished here).
    """

    def __init__(
        self,
        project: str = "lightning",
        name: str | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        tags: Iterable[str] = (),
        notes: str = "",
        root: str | os.PathLike[str] | None = None,
        sinks: Sequence[Any] | None = None,
        run: Run | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.config = dict(config or {})
        self.init_kwargs: dict[str, Any] = dict(name=name, tags=tuple(tags), notes=notes, sinks=sinks)
        self.root = run.root if run is not None else resolve_root(root)
        self._run = run
        self._owns_run = run is None

    @property
    def name(self) -> str:
        return self.project

    @property
    def version(self) -> str:
        """The run id (started here on rank zero; other ranks receive paths from rank zero)."""
        return self.experiment.id if rank_zero_only.rank == 0 else ""

    @property
    def save_dir(self) -> str:
        return str(self.root)

    @property
    def log_dir(self) -> str:
        return str(self.experiment.dir)

    @property
    @_loggers.rank_zero_experiment
    def experiment(self) -> Run:
        """The runpoint run (continued with ``resume`` if ``fit`` already finished it)."""
        from .._start import init

        if self._run is None:
            self._run = init(project=self.project, config=self.config, root=self.root, **self.init_kwargs)
        elif self._run.status is not RunStatus.RUNNING and self._owns_run:
            self._run = init(project=self.project, root=self.root, resume=self._run.id, sinks=self.init_kwargs["sinks"])
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        values = vars(params) if isinstance(params, Namespace) else dict(params)
        if self._run is None:
            self.config.update(values)  # the run starts with them in its config.yaml
            self.experiment
        else:
            add_params(self.experiment, values)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.experiment.log(dict(metrics), step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        best = getattr(checkpoint_callback, "best_model_path", None)
        if best:
            run = self.experiment
            run.summary["checkpoint/best_path"] = str(best)
            score = getattr(checkpoint_callback, "best_model_score", None)
            if score is not None:
                run.summary["checkpoint/best_score"] = float(score)

    @rank_zero_only
    def save(self) -> None:
        if self._run is not None and self._run.status is RunStatus.RUNNING:
            self._run.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is None or self._run.status is not RunStatus.RUNNING:
            return
        if not self._owns_run:
            self._run.flush()
            return
        final, error = _STATUS.get(status, RunStatus.COMPLETED), None
        kind, value, tb = sys.exc_info()  # Lightning finalizes "failed" inside its except block
        if status == "failed" and kind is not None:
            final = RunStatus.KILLED if issubclass(kind, KeyboardInterrupt) else RunStatus.FAILED
            error = "".join(traceback.format_exception(kind, value, tb))
        elif final is not RunStatus.COMPLETED:
            error = f"Lightning finished with status {status!r}"
        self._run.finish(final, error=error)
