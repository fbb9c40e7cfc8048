"""PyTorch Lightning: a ``Logger`` that records into runpoint, and a checkpoint callback.

``RunpointLogger`` starts (or, with ``resume=``, continues) the run on rank zero when
Lightning first needs it, records ``save_hyperparameters()`` values as params, every
logged metric at Lightning's global step, and the best checkpoint of a
``ModelCheckpoint`` in the summary. The run finishes when ``fit`` ends (``completed``,
or ``failed`` with the traceback); a later ``trainer.test()`` continues it.

``RunpointCheckpoint`` saves Lightning's whole training state (weights, optimizers,
schedulers, loops, callbacks, precision) with :class:`~runpoint.CheckpointManager`:
atomic, verified, retained by ``keep_last`` / ``keep_best``, never pickled, in the
run's ``checkpoints/``. Lightning resumes from it as from its own files:
``trainer.fit(model, ckpt_path=checkpoint.resume_path(logger))``.

Under DDP there is one run, rank zero's: only it records metrics and writes checkpoints,
and ``resume_path`` gives every rank the same path (the other ranks read the checkpoints
of the run that ``resume`` names). A pickled logger goes on recording into the same run.

Example::

    import lightning as L
    from runpoint.integrations.lightning import RunpointCheckpoint, RunpointLogger

    logger = RunpointLogger(project="mnist", resume="latest")        # continue the last run, if any
    checkpoint = RunpointCheckpoint(monitor="val/loss", keep_last=2, keep_best=1)
    trainer = L.Trainer(max_epochs=10, logger=logger, callbacks=[checkpoint])
    trainer.fit(model, datamodule=dm, ckpt_path=checkpoint.resume_path(logger))  # None: from scratch
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from argparse import Namespace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .._util.optional import is_installed, require
from ..artifacts.manifest import parse_step
from ..artifacts.paths import DB_NAME, RunPaths, resolve_root
from ..config import to_plain
from ..errors import RunNotFoundError, RunpointError
from ..run.run import Run
from ..store.base import RunStatus
from ._common import add_params

__all__ = ["RunpointCheckpoint", "RunpointLogger"]

# the unified `lightning` package, or the older standalone `pytorch_lightning`
_PACKAGE = "lightning.pytorch" if is_installed("lightning") or not is_installed("pytorch_lightning") else "pytorch_lightning"
pl = require(_PACKAGE, "lightning", "runpoint.integrations.lightning")
_loggers = importlib.import_module(f"{_PACKAGE}.loggers.logger")
rank_zero_only = importlib.import_module(f"{_PACKAGE}.utilities").rank_zero_only
_CheckpointCallback: Any = importlib.import_module(f"{_PACKAGE}.callbacks").Checkpoint
_CheckpointIO: Any = importlib.import_module(f"{_PACKAGE}.plugins.io").CheckpointIO

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
        resume: ``"latest"`` or a run id to continue (``rp.init(resume=...)``); a missing
            run starts a new one.
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
        resume: str | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.config = dict(config or {})
        self.resume = resume
        self.init_kwargs: dict[str, Any] = dict(name=name, tags=tuple(tags), notes=notes, sinks=sinks)
        self.root = run.root if run is not None else resolve_root(root)
        self._run = run
        self._run_id: str | None = run.id if run is not None else None
        self._owns_run = run is None

    def __getstate__(self) -> dict[str, Any]:
        # A run holds threads and a database connection: a copy keeps its id and, when
        # next used, goes on recording into the same run (see ``experiment``).
        state = dict(self.__dict__)
        state["_run"] = None
        return state

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
        from ..run.lifecycle import active_run
        from ..run.start import init

        if self._run is None and self._run_id is not None:  # an unpickled copy: the same run
            active = active_run(self._run_id)
            self._run = active if isinstance(active, Run) else self._continue_in_this_process(self._run_id)
        if self._run is None and self.resume is not None:
            try:
                self._run = init(distributed=False, project=self.project, root=self.root, resume=self.resume, sinks=self.init_kwargs["sinks"])
            except RunNotFoundError:
                pass  # nothing to continue: start afresh
        if self._run is None:
            self._run = init(distributed=False, project=self.project, config=self.config, root=self.root, **self.init_kwargs)
        elif self._run.status is not RunStatus.RUNNING and self._owns_run:
            self._run = init(distributed=False, project=self.project, root=self.root, resume=self._run.id, sinks=self.init_kwargs["sinks"])
        self._run_id = self._run.id
        return self._run

    def _continue_in_this_process(self, run_id: str) -> Run:
        from ..run.start import init

        try:
            return init(distributed=False, project=self.project, root=self.root, resume=run_id, sinks=self.init_kwargs["sinks"])
        except RunpointError as exc:
            if "still running" not in str(exc):
                raise
            raise RunpointError(
                f"RunpointLogger: a copy of this logger (pickled into process {os.getpid()}) cannot record into run "
                f"{run_id}: {exc}. With strategy='ddp_spawn', the run was started before fit (by logger.experiment "
                "or checkpoint.resume_path(logger)) in the launching process; use strategy='ddp', or leave the run "
                "to the training processes"
            ) from exc

    def rank_zero_run_dir(self) -> Path | None:
        """The directory of the run rank zero records into, as any rank can tell before ``fit``.

        Ranks other than zero start no run; they need this to agree with rank zero on
        ``ckpt_path`` before the processes are connected. It is the given ``run=``, the run
        ``resume`` names (rank zero continues it), or None: rank zero starts a new run,
        which has no checkpoints yet.
        """
        if rank_zero_only.rank == 0:
            return Path(self.experiment.dir)
        if self._run is not None:
            return Path(self._run.dir)
        wanted = self._run_id or self.resume
        if wanted is None or not (self.root / DB_NAME).exists():
            return None
        from ..run.start import find_for_resume
        from ..store import open_store

        store = open_store(self.root, create=False)
        try:
            record = find_for_resume(store, self.root, self.project, wanted)
        except RunNotFoundError:
            return None
        finally:
            store.close()
        return RunPaths(self.root, record.project, record.id).dir

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


class RunpointCheckpoint(_CheckpointCallback):
    """Saves Lightning's training state with :class:`~runpoint.CheckpointManager`.

    It saves at the end of every ``every_n_epochs`` epochs (after validation, so
    ``monitor`` can be a validation metric) and every ``every_n_train_steps`` optimizer
    steps, on rank zero, into the run of the :class:`RunpointLogger` (or, without one,
    ``<default_root_dir>/checkpoints``). Being a Lightning ``Checkpoint``, it replaces
    Lightning's default ``ModelCheckpoint``.

    Args:
        monitor, mode: the metric that ranks checkpoints (as Lightning logs it) and
            whether lower (``"min"``) or higher is better.
        keep_last, keep_best, keep_every_n_steps: retention, as for ``CheckpointManager``;
            nothing is deleted when none is given.
        every_n_epochs: save after every N epochs (0: never at epoch ends).
        every_n_train_steps: also save every N optimizer steps.
        manager_options: any other ``CheckpointManager`` keyword (``async_save``, ``compress``...).
    """

    def __init__(
        self,
        *,
        monitor: str | None = None,
        mode: str = "min",
        keep_last: int | None = None,
        keep_best: int | None = None,
        keep_every_n_steps: int | None = None,
        every_n_epochs: int = 1,
        every_n_train_steps: int | None = None,
        **manager_options: Any,
    ) -> None:
        super().__init__()
        self.manager_options: dict[str, Any] = dict(
            monitor=monitor, mode=mode, keep_last=keep_last, keep_best=keep_best,
            keep_every_n_steps=keep_every_n_steps, **manager_options,
        )
        self.every_n_epochs = every_n_epochs
        self.every_n_train_steps = every_n_train_steps
        self.manager: Any = None
        self._saved_step: int | None = None

    def resume_path(self, logger: RunpointLogger, which: Any = "latest") -> str | None:
        """The checkpoint of ``logger``'s run to pass as ``ckpt_path`` (``"latest"``, ``"best"`` or a step); None if none.

        Every rank of a distributed job gets the same answer: rank zero from the run it
        starts or continues, the others by reading that run's checkpoints (they record nothing).
        """
        if rank_zero_only.rank == 0:
            manager = self._manager_for(logger.experiment)
        else:
            run_dir = logger.rank_zero_run_dir()
            if run_dir is None or not (run_dir / "checkpoints").is_dir():
                return None
            manager = self._reader_for(str(run_dir / "checkpoints"))
        info = manager.best if which == "best" else manager.latest if which == "latest" else next(
            (c for c in manager.list() if c.step == which), None)
        return None if info is None else str(info.path)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        logger = next((lg for lg in trainer.loggers if isinstance(lg, RunpointLogger)), None)
        if trainer.is_global_zero:
            target = logger.experiment if logger is not None else os.path.join(trainer.default_root_dir, "checkpoints")
            directory = self._manager_for(target).directory
        else:
            directory = None
        directory = trainer.strategy.broadcast(directory)
        if not trainer.is_global_zero:  # other ranks read checkpoints (to resume), never write them
            self._reader_for(directory)
        if not isinstance(trainer.strategy.checkpoint_io, _RunpointCheckpointIO):
            trainer.strategy.checkpoint_io = _RunpointCheckpointIO(trainer.strategy.checkpoint_io, self)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.every_n_train_steps and trainer.global_step and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.every_n_epochs and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._save(trainer)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if self.manager is not None:
            self.manager.wait()

    def state_dict(self) -> dict[str, Any]:
        return {"saved_step": self._saved_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._saved_step = state_dict.get("saved_step")

    # -- helpers -----------------------------------------------------------------------

    def _manager_for(self, target: Any) -> Any:
        from ..checkpoint import CheckpointManager, LocalProcess

        if self.manager is None or (isinstance(target, Run) and self.manager.run is not target):
            local = LocalProcess(self.manager_options.get("rng", True))  # rank zero saves it all: never sharded
            self.manager = CheckpointManager(target, **{"process": local, **self.manager_options})
        return self.manager

    def _reader_for(self, directory: str) -> Any:
        """A manager over ``directory`` for a rank that only reads checkpoints."""
        from ..checkpoint import CheckpointManager, LocalProcess

        if self.manager is None or Path(self.manager.directory) != Path(directory):
            self.manager = CheckpointManager(directory, monitor=self.manager_options["monitor"], mode=self.manager_options["mode"], process=LocalProcess())
        return self.manager

    def _save(self, trainer: Any) -> None:
        step = trainer.global_step
        if trainer.sanity_checking or step == self._saved_step:
            return
        self._saved_step = step
        checkpoint = trainer._checkpoint_connector.dump_checkpoint(weights_only=False)
        for key in ("hyper_parameters", "datamodule_hyper_parameters"):
            if key in checkpoint:  # whatever objects they hold: kept as plain data, never pickled
                checkpoint[key] = to_plain(dict(checkpoint[key]))
        metrics = {key: float(value) for key, value in trainer.callback_metrics.items() if _is_scalar(value)}
        if trainer.is_global_zero:
            self.manager.save(step, checkpoint, metrics=metrics)
        trainer.strategy.barrier("RunpointCheckpoint.save")

    def _load(self, path: str, map_location: Any) -> dict[str, Any]:
        """Lightning's checkpoint dict from a runpoint checkpoint directory, or a ``latest``/``best`` pointer."""
        from ..checkpoint import load_checkpoint

        location = Path(path)
        which: Any = location.name if location.name in ("latest", "best") else parse_step(location.name)
        manager = self.manager
        if manager is not None and which is not None and Path(manager.directory) == location.parent:
            info = manager.latest if which == "latest" else manager.best if which == "best" else next(
                (c for c in manager.list() if c.step == which), None)
            if info is not None:  # through the manager: RNG states come back and a resumed run is rewound
                state: dict[str, Any] = dict.fromkeys(info.manifest.keys)
                manager.restore(state, which=info.step, strict=False, map_location=map_location)
                return state
        if which in ("latest", "best"):
            return load_checkpoint(location.parent, which=which, map_location=map_location)
        return load_checkpoint(location, map_location=map_location)


class _RunpointCheckpointIO(_CheckpointIO):
    """Lets Lightning load runpoint checkpoints by path; everything else goes to its own IO."""

    def __init__(self, inner: Any, callback: RunpointCheckpoint) -> None:
        self.inner = inner
        self.callback = callback

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        self.inner.save_checkpoint(checkpoint, path, storage_options=storage_options)

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        location = Path(os.fspath(path))
        if (location / "manifest.json").exists() or (location.name in ("latest", "best") and location.is_file()):
            return self.callback._load(str(location), map_location)
        return self.inner.load_checkpoint(path, map_location=map_location, weights_only=weights_only)  # type: ignore[no-any-return]

    def remove_checkpoint(self, path: Any) -> None:
        self.inner.remove_checkpoint(path)

    def teardown(self) -> None:
        self.inner.teardown()


def _is_scalar(value: Any) -> bool:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return True
    return hasattr(value, "numel") and callable(value.numel) and value.numel() == 1
