"""A run: one execution of a training script, and the handle that records it.

:class:`Run` coordinates; the work is done elsewhere: the writer thread (:mod:`runpoint.run.writer`)
stores points, the store (:mod:`runpoint.store`) indexes them, :mod:`runpoint.run.console` captures
output, :mod:`runpoint.run.metadata` describes the machine and :mod:`runpoint.run.lifecycle` ends the
run however the process ends. Diagnostics have modules of their own (:mod:`runpoint.diagnostics`), as do
the writer listeners :mod:`runpoint.run.nonfinite` and :mod:`runpoint.run.best` and the alerts
(:mod:`runpoint.run.alerting`, :mod:`runpoint.alerts`). Creating or resuming a run is
:func:`runpoint.init` in :mod:`runpoint.run.start`; closing it out at the end is :mod:`runpoint.run._finish`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from ..artifacts.paths import RunPaths
from ..errors import CheckpointError, InvalidArgumentError
from ..store.base import RunStatus, Store
from . import lifecycle
from ._finish import FinishedWriter, close_run, outcome_at_exit, outcome_of_block
from .alerting import user_alert
from .best import BestTracker
from .console import ConsoleCapture
from .nonfinite import NonFiniteGuard
from .ranks import RankRole, check_log_ranks, with_suffix
from .summary import Summary
from .values import as_step as _as_step
from .values import prepare
from .writer import Writer

if TYPE_CHECKING:
    from ..diagnostics.model_summary import ModelSummary
    from ..diagnostics.step_timer import StepTimer
    from ..diagnostics.watch import Watcher
    from ..sinks.hub import SinkHub

logger = logging.getLogger("runpoint")

SignalHook = Callable[[int], Any]  # returns True to defer the exit to a step boundary


class Run:
    """A tracked run. Create it with :func:`runpoint.init`, not directly.

    Example::

        with rp.init(project="digits", config={"lr": 3e-4}) as run:
            for step in range(100):
                run.log({"train/loss": 1 / (step + 1)})
            run.summary["best/val_acc"] = 0.97
    """

    def __init__(
        self,
        *,
        store: Store,
        paths: RunPaths,
        name: str,
        config: dict[str, Any],
        tags: tuple[str, ...],
        notes: str,
        group: str | None,
        resume_count: int,
        next_step: int,
        summary: dict[str, Any],
        meta: dict[str, Any],
        console: ConsoleCapture | None,
        flush_interval: float,
        stored_steps: dict[str, int] | None = None,
        role: RankRole | None = None,
    ) -> None:
        self.id = paths.run_id
        self.project = paths.project
        self.name = name
        self.config = config
        self.tags = tags
        self.notes = notes
        self.group = group
        self.resume_count = resume_count
        self.meta = meta
        self._paths = paths
        self._store = store
        self._console = console
        self._next_step = next_step
        # In a resumed run, logging a metric at a step where it has stored points rewinds
        # the run there (see ``log``); checked until the run logs at or past this step.
        self._resume_frontier: int | None = next_step if resume_count > 0 and next_step > 0 else None
        # rank N > 0 of a multi-rank job: its points are stored as key@rankN, and only when asked
        self._role = role
        self._suffix = role.suffix if role is not None else None
        if self._suffix is not None:
            self._resume_frontier = None  # rank 0 rewinds the run's points, for every rank
        self._resume_stored: dict[str, int] = dict(stored_steps or {})
        self._status = RunStatus.RUNNING
        self._signal_received: int | None = None
        self._signal_hooks: list[SignalHook] = []
        self._finish_hooks: list[Callable[["Run"], None]] = []
        self._after_close: list[Callable[[], object]] = []  # after the status is stored (runpoint.sync)
        self._sinks: SinkHub | None = None
        # batch numbers are unique per attempt and rank: a resumed run's batches never match the
        # earlier attempts', nor one rank's another's (2**24 batches per rank and attempt)
        rank = role.rank if role is not None else 0
        writer = Writer(store, self.id, flush_interval=flush_interval, last_steps=stored_steps,
                        first_sequence=(resume_count << 40) + (rank << 24) + 1,
                        rank=role.rank if role is not None else None)
        self._writer: Writer | FinishedWriter = writer
        if console is not None:
            writer.on_tick.append(console.flush)
        self.summary = Summary(self.id, store, writer, summary, persist=not rank)
        self._best = BestTracker(self.summary.__setitem__, summary)
        writer.listeners += [NonFiniteGuard(self.summary.__setitem__, summary), self._best]
        lifecycle.register(self)

    # -- what users read -------------------------------------------------------------

    @property
    def dir(self) -> Path:
        """This run's directory: config.yaml, meta.json, logs/, media/, checkpoints/."""
        return self._paths.dir

    @property
    def root(self) -> Path:
        return self._paths.root

    @property
    def status(self) -> RunStatus:
        return self._status

    @property
    def step(self) -> int:
        """The step the next ``log`` without ``step=`` will use."""
        return self._next_step

    @property
    def resumed(self) -> bool:
        return self.resume_count > 0

    @property
    def rank(self) -> int:
        """This process's rank in a multi-rank job (every rank has the same run); 0 for a single process."""
        return self._role.rank if self._role is not None else 0

    @property
    def world_size(self) -> int:
        """How many ranks record this run; 1 for a single process."""
        return self._role.world_size if self._role is not None else 1

    @property
    def store(self) -> Store:
        return self._store

    def __repr__(self) -> str:
        return f"Run(id={self.id!r}, project={self.project!r}, name={self.name!r}, status={self._status.value!r})"

    # -- logging ---------------------------------------------------------------------

    def log(self, data: Mapping[str, Any], step: int | None = None, *, ranks: str | None = None) -> None:
        """Record metrics for one step; returns at once, the writer thread stores them.

        ``data`` maps names to int, float, bool, numpy scalars or 0-d tensors; nested dicts
        flatten with ``/``. Without ``step`` the step after the last one is used. A value
        of an unsupported type raises :class:`~runpoint.errors.InvalidValueError` (a
        ``TypeError``) naming the key, and a negative ``step`` raises
        :class:`~runpoint.errors.InvalidArgumentError` (a ``ValueError``); nothing of that
        call is recorded.

        A key's steps should increase. Logging a key at a step at or below its last one
        keeps both points and warns once per key. In a resumed run, the first ``log`` at a
        step at or below the last stored step drops the stored points from that step on
        (as restoring a checkpoint does), so a script restarted from step 0 records one line.

        In a multi-rank job every rank calls ``log`` alike (``run.step`` moves on each), but
        only rank 0's points are stored, under their keys. With ``ranks="all"`` (or
        ``rp.init(log_ranks="all")``) rank N > 0 stores its points too, under
        ``<key>@rank<N>`` (``train/loss@rank3``); ``ranks="zero"`` keeps rank 0's only.

        Example::

            run.log({"train/loss": loss, "train/lr": sched.get_last_lr()[0]}, step=step)
            run.log({"data/wait_s": wait}, ranks="all")      # every rank's, as data/wait_s@rank<N>
        """
        if type(data) is not dict and not isinstance(data, Mapping):
            raise InvalidArgumentError("data", f"run.log takes a dict of metrics, not {type(data).__qualname__}")
        values, deferred = prepare(data)
        if step is None:
            step = self._next_step
        elif type(step) is not int or step < 0:
            step = _as_step(step)
        if self._resume_frontier is not None:
            self._first_log_after_resume(step, values)
        self._next_step = step + 1
        if ranks is not None or self._suffix is not None:
            values = self._rank_values(values, ranks)
        if values:
            self._writer.put(step, time.time(), values, deferred)

    def _first_log_after_resume(self, step: int, values: Mapping[str, Any]) -> None:
        frontier, stored = self._resume_frontier, self._resume_stored
        if frontier is None or step >= frontier:
            self._resume_frontier = None  # going on from where it stopped
            return
        if any(stored.get(key, -1) >= step for key in values):  # a metric logged again: start over there
            self._resume_frontier = None
            self._writer.rewind(step - 1, wait=False)  # in queue order, on the writer thread
        # else: only keys without points at this step (an image for an old step): nothing to supersede

    def _rank_values(self, values: dict[str, Any], ranks: str | None) -> dict[str, Any]:
        """What this rank stores of ``values``: all on rank 0, suffixed ``@rank<N>`` or nothing elsewhere."""
        chosen = check_log_ranks("ranks", ranks) if ranks is not None else None
        if self._suffix is None:
            return values
        if (chosen or self._role.log_ranks) != "all":  # type: ignore[union-attr]
            return {}
        return with_suffix(values, self._suffix)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged so far is in the store. False on timeout."""
        return self._writer.flush(timeout)

    def log_internal(self, values: dict[str, Any], step: int) -> None:
        """Queue values that runpoint made itself (already flat and valid) without moving ``step``.

        For diagnostics and integrations (see :class:`~runpoint.handle.RunHandle`). On rank N > 0
        of a multi-rank job they are stored as ``run.log``'s are (``log_ranks``)."""
        if self._suffix is not None:
            values = self._rank_values(values, None)
        if values:
            self._writer.put_internal(step, time.time(), values)

    def _log_machine(self, values: dict[str, Any], step: int) -> None:
        """Store values about this machine as they are, on any rank (the system sampler of a node's leader)."""
        self._writer.put_internal(step, time.time(), values)

    def add_params(self, params: dict[str, Any], tags: Sequence[str] = ()) -> None:
        """Add searchable params (flat, dotted keys) and tags; stored by the writer thread (rank 0's only)."""
        if isinstance(self._writer, Writer) and self._suffix is None:
            self._writer.add_params(dict(params), tuple(tags))

    def add_batch_listener(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener`` on the writer thread with each batch the store committed."""
        if isinstance(self._writer, Writer):
            self._writer.listeners.append(listener)

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Record an alert (level info, warning or error): stored on the run, logged once, sent to the webhooks
        of ``experiment.alerts``, on the writer's thread. Example: ``run.alert("val/acc < 0.9", f"{acc:.3f}")``"""
        self._writer.add_alert(user_alert(self.id, title, text, level, self._next_step - 1))

    # -- diagnostics (each lives in its own module) -----------------------------------

    def watch(
        self, model: Any, every: int = 100, grads: bool = True, params: bool = True, histograms: bool = False,
        max_grad_norm: float | None = None, *, activations: bool = True,
    ) -> "Watcher":
        """Log gradient, parameter, update and NaN/Inf statistics of ``model`` every ``every`` backward passes.

        See :mod:`runpoint.diagnostics.watch` for what is logged. The hooks come off when the run ends
        or with ``.remove()`` on the returned watcher.

        Example::

            run.watch(model, every=100, max_grad_norm=1.0)
        """
        from ..diagnostics.watch import Watcher

        watcher = Watcher(self, model, every=every, grads=grads, params=params, histograms=histograms,
                          max_grad_norm=max_grad_norm, activations=activations)
        self.add_finish_hook(lambda _: watcher.remove())
        return watcher

    def log_model(self, model: Any, example_input: Any = None, name: str = "model") -> "ModelSummary":
        """Write ``<name>_summary.txt`` (layers, shapes, parameter counts) and store the totals as params.

        Example::

            run.log_model(model, example_input=torch.zeros(1, 64))
        """
        from ..diagnostics.model_summary import log_model

        return log_model(self, model, example_input, name)

    def step_timer(self, every: int = 1) -> "StepTimer":
        """A timer whose ``tick(samples=...)`` logs step time, throughput and peak memory.

        Example::

            timer = run.step_timer()
            for step in range(n):
                train_step()
                run.log({"train/loss": loss}, step=step)
                timer.tick(samples=batch_size)
        """
        from ..diagnostics.step_timer import StepTimer

        return StepTimer(self, every=every)

    def monitor(self, key: str, mode: str = "min") -> None:
        """Keep the best value of metric ``key`` and its step in the summary (``best/<key>``, ``best/<key>.step``).

        Example::

            run.monitor("val/loss", "min")
            run.monitor("val/acc", "max")
        """
        self._writer.flush()
        stats = self._store.metric_stats(self.id, [key]).get(key) if isinstance(key, str) else None
        self._best.add(key, mode, stats)

    # -- hooks for checkpointing and integrations -------------------------------------

    def add_signal_hook(self, hook: SignalHook) -> None:
        """Call ``hook(signum)`` when SIGTERM arrives, before the process exits.

        The checkpoint manager uses this to save on preemption (it also asks for SIGUSR1,
        through :func:`runpoint.run.lifecycle.handle_signal`). A hook that returns True defers
        the exit: the process goes on until that hook calls
        :func:`runpoint.run.lifecycle.exit_for_signal` (after a save at a step boundary).
        """
        self._signal_hooks.append(hook)

    def add_finish_hook(self, hook: Callable[["Run"], None]) -> None:
        """Call ``hook(run)`` while the run finishes, before its status is final."""
        self._finish_hooks.append(hook)

    def _attach_sinks(self, hub: "SinkHub") -> None:
        """Mirror everything the writer commits from now on to ``hub``'s sinks."""
        self._sinks = hub
        self.add_batch_listener(hub.on_batch)

    def _on_signal(self, signum: int) -> bool:
        """Run the hooks; True when one of them defers the exit to a later step boundary."""
        self._signal_received = signum
        defer = False
        for hook in self._signal_hooks:
            try:
                defer = bool(hook(signum)) or defer
            except Exception:
                logger.exception("runpoint: a signal hook of run %s failed", self.id)
        return defer

    def rewind(self, step: int) -> int:
        """Forget what was logged after ``step``: for a resume from a checkpoint of ``step``.

        Waits for the points logged so far to be stored, drops those with a larger step
        (a killed attempt logged them; the resumed one logs them again, so charts show one
        line), and makes ``step + 1`` the step of the next ``log`` without ``step=``.
        Returns how many points were dropped. :meth:`CheckpointManager.restore
        <runpoint.CheckpointManager.restore>` calls it in a resumed run.
        """
        step = _as_step(step, allow_negative=True) if type(step) is not int else step
        if self._suffix is not None:  # rank N > 0: rank 0 drops the run's points, every rank's
            dropped = 0
        elif isinstance(self._writer, Writer):
            dropped = self._writer.rewind(step)  # after what is queued; resets the step checks
        else:
            dropped = self._store.truncate_metrics(self.id, step)
        self._next_step = step + 1
        self._resume_frontier = None
        if self._sinks is not None:  # after the flush: the sinks hear of it after the points before it
            self._sinks.rewind(step)
        return dropped

    # -- ending ----------------------------------------------------------------------

    def finish(self, status: RunStatus | str = RunStatus.COMPLETED, error: str | None = None) -> None:
        """Flush everything and mark the run ``status`` (``completed`` by default).

        Called for you when the ``with`` block ends or the process exits. Idempotent.
        """
        if self._status is not RunStatus.RUNNING:
            return
        final = RunStatus(status)
        if final is RunStatus.RUNNING:
            raise InvalidArgumentError("status", "a run cannot finish as 'running'")
        for hook in self._finish_hooks:
            try:
                hook(self)
            except CheckpointError as exc:  # e.g. the last async save failed: not "completed"
                logger.error("runpoint: run %s: %s", self.id, exc)
                if final is RunStatus.COMPLETED:
                    final, error = RunStatus.FAILED, f"{type(exc).__name__}: {exc}"
            except Exception:
                logger.exception("runpoint: a finish hook of run %s failed", self.id)
        self._status = final
        close_run(self, final, error)  # the writer, spilled points, store, meta.json, sinks

    def _finish_at_exit(self) -> None:
        self.finish(*outcome_at_exit(self._signal_received))

    def __enter__(self) -> "Run":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish(*outcome_of_block(kind, value, tb, self._signal_received))
