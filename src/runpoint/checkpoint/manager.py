"""``CheckpointManager``: saves, retains and restores the checkpoints of a run.

It coordinates and holds no file code. Its settings are one frozen :class:`~.options.CheckpointOptions`;
what to keep is :mod:`.policy`, how bytes are written and read :mod:`.io`, how a checkpoint
becomes visible at once :mod:`.atomic`, which checkpoints exist :mod:`.directory`, how a state
becomes tensors plus msgpack :mod:`._state`, async saves :mod:`._async`, and what depends on the
process (sequence numbers, who moves pointers and applies retention, RNG, preemption) :mod:`.process`.
"""

from __future__ import annotations

import builtins
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Unpack

from ..artifacts.manifest import CheckpointInfo, Manifest
from ..artifacts.storage import open_artifacts
from ..distributed import over, share_outcome
from ..errors import InvalidArgumentError
from ..logs import stderr as stderr_logs
from . import _state
from . import export as _export
from ._async import BackgroundSaver, wait_at_exit
from ._checks import check_metrics, check_step, refuse_sharded_encryption
from ._commit import write_checkpoint
from ._fallback import first_intact, rewind_resumed_run
from ._registration import RegistrySync
from ._restore import load_into
from ._retention import apply_retention, registered_of
from ._sharded_restore import restore_sharded, verifier
from ._sharded_saves import ShardedSaves
from .directory import CheckpointDirectory
from .io import CheckpointIO, Payload
from .options import (
    CheckpointKeywords,
    CheckpointOptions,
    options_from_keywords,
    run_and_location,
)
from .policy import Mode, RetentionPolicy, due
from .process import CheckpointProcess
from .ranks import process_for

if TYPE_CHECKING:
    from ..handle import RunHandle

logger = logging.getLogger("runpoint")

class CheckpointManager:
    """Atomic, verified, retained checkpoints with exact resume.

    Args:
        run_or_directory: a :class:`~runpoint.Run` (checkpoints go to its
            ``checkpoints/`` directory and are registered in its store) or a directory:
            a local path or an fsspec URL such as ``s3://bucket/ckpts``.
        options: all settings as one :class:`~runpoint.checkpoint.CheckpointOptions`;
            or the short keywords below, which build one (not both).
        process: what depends on the process or rank (default: one rank of the job when
            ``torch.distributed`` has a process group, whose saves are then sharded; else
            a single process).
        **keywords: the short form (``keep_last=3, keep_best=1, monitor="val/loss"``,
            ``save_every_n_steps``, ``async_save``, ``compress``, ``rng``, ``directory``...),
            each described in :class:`~runpoint.checkpoint.options.CheckpointKeywords`.

    Without ``keep_*`` or ``retention`` every checkpoint is kept.

    Example::

        ckpt = rp.CheckpointManager(run, keep_last=3, keep_best=1, monitor="val/loss")
        state = {"model": model, "optimizer": opt, "scheduler": sched}
        start = ckpt.restore(state) or 0            # the step after the checkpoint's, or 0
        for step in range(start, total):
            ...
            if step % 500 == 0:
                ckpt.save(step, state, metrics={"val/loss": val_loss})
    """

    def __init__(
        self,
        run_or_directory: "RunHandle | str | os.PathLike[str]",
        options: CheckpointOptions | None = None,
        *,
        process: CheckpointProcess | None = None,
        **keywords: "Unpack[CheckpointKeywords]",
    ) -> None:
        if options is not None and keywords:
            raise InvalidArgumentError("options", f"give CheckpointOptions or keywords, not both (got {sorted(keywords)})")
        if options is not None and not isinstance(options, CheckpointOptions):
            raise InvalidArgumentError("options", f"must be CheckpointOptions, not {type(options).__qualname__}")
        self.options = options if options is not None else options_from_keywords(keywords)
        stderr_logs.install()
        self.run, location = run_and_location(run_or_directory, self.options.location)
        self.process = refuse_sharded_encryption(self.options.encrypt, process or process_for(self.options.rng))
        self._storage = open_artifacts(location, self.options.storage_options)
        self._dir = CheckpointDirectory.prepare(self._storage, tidy=self.process.coordinates)
        if self.process.coordinates:
            self._dir.write_pointers(self.latest, self.best, with_best=self.monitor is not None, only_if_stale=True)
        self._lock = threading.RLock()
        self._writing_thread: int | None = None
        self._saver = BackgroundSaver(self.run.id if self.run else "dir") if self.options.async_save else None
        self._started = time.monotonic()
        self._last_save_time: float | None = None
        self._last_save_step: int | None = None
        self.restored_step: int | None = None  # the step of the checkpoint the last restore() loaded
        self._preemption = self.process.preemption(
            self._save_now, self.wait, lambda: self._writing_thread == threading.get_ident(), self._saved_by_now
        )
        self._saved_here: set[int] = set()  # sequences committed by this manager
        self._sharded_saves = ShardedSaves(self._storage, self._dir, self.process, self.run, self._saver,  # type: ignore[arg-type]
                                           self._lock, self._after_commit) if self._sharded else None
        if self._sharded_saves is not None:
            self._saved_here = self._sharded_saves.committed
        self._registry = RegistrySync(self.run, self._storage) if self.run is not None and self.process.coordinates else None
        if self._registry is not None:
            self._registry.reconcile(self._dir.list(), self.best)
        if self.run is not None:
            self.run.add_finish_hook(self._on_run_finish)
        elif self._saver is not None:
            wait_at_exit(self)  # nothing else would wait for its last save at exit

    # the options, as attributes (read-only: the options are frozen)
    retention: RetentionPolicy = property(lambda self: self.options.retention)  # type: ignore[assignment]
    monitor: str | None = property(lambda self: self.options.monitor)  # type: ignore[assignment]
    mode: Mode = property(lambda self: self.options.mode)  # type: ignore[assignment]
    io: CheckpointIO = property(lambda self: self.options.io)  # type: ignore[assignment]
    rng: bool = property(lambda self: self.options.rng)  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CheckpointManager({self.directory!r}, retention={self.retention!r})"

    @property
    def _sharded(self) -> bool:
        """Whether saves are sharded across the ranks of a job (and restores collective)."""
        return bool(getattr(self.process, "sharded", False))

    # -- what users read -------------------------------------------------------------

    @property
    def directory(self) -> str:
        """Where the checkpoints are: a local path or a URL."""
        return self._storage.display()

    def list(self) -> list[CheckpointInfo]:
        """The committed checkpoints, by step."""
        return self._dir.list()

    @property
    def latest(self) -> CheckpointInfo | None:
        """The checkpoint saved last, or None."""
        return self._dir.latest()

    @property
    def best(self) -> CheckpointInfo | None:
        """The checkpoint with the best ``monitor`` value, or None (also without a monitor)."""
        return self._dir.best(self.monitor, self.mode) if self.monitor else None

    def should_save(self, step: int) -> bool:
        """Whether to save at ``step``: a trigger (``save_every_n_steps`` / ``save_every_seconds``)
        asks for it, or a preemption signal arrived (see :meth:`save_on_preemption`)."""
        if self._preemption.poll() is not None:  # multi-rank: a collective, once save_on_preemption() ran
            return True
        triggers = self.options.triggers
        if not triggers and self._preemption.at_boundary:
            return False
        if triggers and step == self._last_save_step:
            return False
        since = time.monotonic() - (self._last_save_time if self._last_save_time is not None else self._started)
        return due(triggers, step, self._last_save_step, since)

    # -- saving ----------------------------------------------------------------------

    def save(self, step: int, state: Mapping[str, Any], metrics: Mapping[str, Any] | None = None) -> CheckpointInfo | None:
        """Save ``state`` as the checkpoint of ``step`` (the step just completed).

        ``state`` maps names to objects with ``state_dict()``/``load_state_dict()``
        (modules, optimizers, schedulers, GradScaler), tensors, generators and plain
        data. Returns the committed checkpoint; with ``async_save`` returns None at once
        and the checkpoint commits in the background (:meth:`wait`). Retention runs
        after each commit. Raises :class:`~runpoint.CheckpointError` if the state holds
        something that cannot be stored (naming its key), or the disk is full or not
        writable (existing checkpoints are untouched).
        """
        step = check_step(step)
        metrics = check_metrics(metrics)
        if self.options.needs_monitor and self.monitor not in metrics and self._preemption.pending is None:
            # (a save forced by preemption mid-epoch has no validation metrics; it cannot be best)
            raise InvalidArgumentError(
                "metrics", f"keep_best is set, so save() needs metrics[{self.monitor!r}] (got {sorted(metrics) or 'none'})"
            )
        if self._sharded_saves is not None:
            info = self._sharded_saves.save(step, state, metrics, self._starting)
            self._preemption.exit_if_pending(self._last_save_step)
            return info
        if self._saver is not None:
            self._saver.wait()  # one save in flight; an earlier failure surfaces here
        step = self.process.agree_on_step(step)
        encoded = _state.encode(state, self.process.capture_rng())
        rngs = self.process.rng_names()
        self._last_save_step, self._last_save_time = step, time.monotonic()
        if self._saver is None:
            info = self._write(step, Payload(encoded.tensors, encoded.structure, state), encoded.keys, metrics, rngs)
        else:
            host = self._saver.buffers.snapshot(encoded.tensors)
            payload = Payload(host, encoded.structure, state)
            self._saver.submit(lambda: self._write(step, payload, encoded.keys, metrics, rngs))
            info = None
        self._preemption.exit_if_pending(self._last_save_step)
        return info

    def _starting(self, step: int) -> None:
        self._last_save_step, self._last_save_time = step, time.monotonic()

    def wait(self, timeout: float | None = None) -> CheckpointInfo | None:
        """Wait for the async save in flight to commit; raises its error. Its checkpoint, or None."""
        return self._saver.wait(timeout) if self._saver is not None else None

    def _write(self, step: int, payload: Payload, keys: dict[str, str], metrics: dict[str, float],
               rng_names: tuple[str, ...]) -> CheckpointInfo:
        with self._lock:
            self._writing_thread = threading.get_ident()
            try:
                return self._write_locked(step, payload, keys, metrics, rng_names)
            finally:
                self._writing_thread = None

    def _write_locked(self, step: int, payload: Payload, keys: dict[str, str], metrics: dict[str, float],
                      rng_names: tuple[str, ...]) -> CheckpointInfo:
        info = write_checkpoint(self._storage, self._dir, self.io, self.process, self.run, step, payload, keys,
                                metrics, rng_names)
        self._saved_here.add(info.sequence)
        self._after_commit(info)
        return info

    def _after_commit(self, info: CheckpointInfo) -> None:
        if not self.process.coordinates:
            return
        best = self.best
        self._dir.write_pointers(info, best, with_best=self.monitor is not None)
        if self._registry is not None:
            self._registry.added(info, is_best=best is not None and best.step == info.step)
            if best is not None and best.step != info.step:
                self._registry.best_is(best.step)
        self._apply_retention()

    def _apply_retention(self) -> builtins.list[int]:
        """Delete what the policy does not keep; never the latest, the best, a registered model's, or one being read."""
        with self._lock:
            protected = [info.step for info in (self.latest, self.best) if info is not None]
            return apply_retention(self._storage, self._dir, self.retention, protected, self.io, self._registry,
                                   registered_of(self.run))

    # -- restoring -------------------------------------------------------------------

    def restore(
        self, state: Mapping[str, Any], which: Any = "latest", strict: bool = True, map_location: Any = None
    ) -> int | None:
        """Load a checkpoint into ``state`` in place; returns the step to continue from.

        That is the checkpoint's step + 1 (the checkpoint holds the state after its step),
        or None when there is nothing to restore, so ``start = ckpt.restore(state) or 0``
        followed by ``for step in range(start, total)`` resumes exactly; the checkpoint's
        own step is :attr:`restored_step`.

        ``which`` is ``"latest"``, ``"best"`` or a step. Files are verified against the
        manifest first; a corrupt latest falls back to the newest intact checkpoint with a
        warning (``"best"`` and explicit steps raise instead). Objects with
        ``load_state_dict`` are loaded, tensors copied into, dicts and lists updated,
        other values replaced in ``state``. Key or shape mismatches raise one
        :class:`~runpoint.CheckpointError` listing them all, before anything changes
        (``strict=False`` tolerates missing and extra keys). RNG states come back too.

        In a resumed run, restoring the run's own checkpoint also drops the metric points
        the killed attempt logged after its step (:meth:`Run.rewind <runpoint.Run.rewind>`),
        so the run continues at the returned step without duplicates.
        """
        if not isinstance(state, Mapping) or not hasattr(state, "__setitem__"):
            raise InvalidArgumentError("state", f"must be a mutable dict of names to objects, not {type(state).__qualname__}")
        if self._sharded:
            self.wait()  # the save in flight commits before anything is read
            with over(self.process.together("restore").data):  # type: ignore[attr-defined]
                return self._restore(state, which, strict, map_location)
        return self._restore(state, which, strict, map_location)

    def _restore(self, state: Mapping[str, Any], which: Any, strict: bool, map_location: Any) -> int | None:
        if self._sharded:  # rank 0 picks; every rank tries the same checkpoints in the same order
            candidates = share_outcome(lambda: self._dir.candidates(which, self.monitor, self.mode))
            self._dir.refresh()
        else:
            candidates = self._dir.candidates(which, self.monitor, self.mode)
        found = first_intact(self._storage, self._dir, candidates, self.io, fall_back=which == "latest",
                             check_sharded=verifier(self._storage, self.process, self._sharded))
        if found is None:
            return None
        if found.manifest.is_sharded:
            restore_sharded(self._storage, found.info, state, self.process, strict=strict, map_location=map_location,
                            distributed=self._sharded)
            self._after_restore(found.manifest)
            self.restored_step = found.info.step
            return found.info.step + 1
        load_into(state, found.document["state"], found.tensors, strict=strict, map_location=map_location,  # type: ignore[arg-type]
                  where=found.info.path)
        if "rng" in found.document:
            self.process.restore_rng(_state.materialize(found.document["rng"], found.tensors))
        self._after_restore(found.manifest)
        self.restored_step = found.info.step
        return found.info.step + 1

    def _after_restore(self, manifest: Manifest) -> None:
        self._last_save_step, self._last_save_time = manifest.step, time.monotonic()
        if self.run is not None:
            rewind_resumed_run(self.run, manifest)

    # -- export ----------------------------------------------------------------------

    def export(self, path: str | os.PathLike[str], which: Any = "best", *, key: str | None = None,
               storage_options: Mapping[str, Any] | None = None) -> str:
        """Write the weights of one checkpoint alone as one safetensors file, for deployment.

        ``key`` names the module in the saved state (default: ``"model"``, or the only
        module). Returns the path written. The file loads with
        ``safetensors.torch.load_file`` and ``model.load_state_dict``. A URL ``path`` is
        written with ``storage_options`` (default: the manager's own).

        Example::

            ckpt.export("model.safetensors")            # the best checkpoint's model
        """
        options = storage_options if storage_options is not None else self.options.storage_options
        return _export.export_checkpoint(self._storage, self._dir, self.io, which, self.monitor, self.mode, path,
                                         key, options)

    # -- preemption ------------------------------------------------------------------

    def save_on_preemption(self, get_state: Callable[[], Any] | None = None, *, check_every: int = 1) -> None:
        """On SIGTERM or SIGUSR1 (schedulers' "you are being preempted"), save and exit.

        Without ``get_state`` (recommended), the save happens at the next step boundary:
        the signal is noted, :meth:`should_save` answers True at the loop's next check,
        and the :meth:`save` that follows commits a checkpoint of a completed step and
        then ends the process (``SystemExit``; the run ends ``killed``; a second signal
        exits at once). A resume from it is exact.

        With ``get_state`` the save happens at once, inside the signal handler:
        ``get_state()`` returns ``(step, state)`` or ``(step, state, metrics)``, or None to
        skip. The handler runs at whatever statement the loop had reached (possibly inside
        ``optimizer.step()``), so use it only when a step outlasts the scheduler's grace
        period. Call this from the main thread.

        In a multi-rank job (sharded saves) a signal on any one rank makes every rank save
        the same step and exit: every rank calls this and :meth:`should_save` at the same
        steps, and each ``should_save`` all-reduces the pending signal over a gloo group of
        the checkpoints' own (about 1 ms on gloo; ``check_every=N`` agrees at every N-th
        call only, so a signal is acted on up to N steps later). ``get_state`` is refused there.

        Example::

            ckpt.save_on_preemption()
            for step in range(start, total):
                train_step()
                if ckpt.should_save(step):   # every N steps, and right after a SIGTERM
                    ckpt.save(step, state)   # after a SIGTERM: save, then exit
        """
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise InvalidArgumentError("check_every", f"must be an int >= 1, got {check_every!r}")
        self._preemption.check_every = check_every
        self._preemption.install(get_state, self.run)

    def _save_now(self, step: int, state: Mapping[str, Any], metrics: Any) -> CheckpointInfo:
        encoded = _state.encode(state, self.process.capture_rng())
        payload = Payload(encoded.tensors, encoded.structure, state)
        return self._write(check_step(step), payload, encoded.keys, check_metrics(metrics), self.process.rng_names())

    def _saved_by_now(self, step: int) -> bool:
        latest = self.latest
        return latest is not None and latest.step == step and latest.sequence in self._saved_here

    # -- ending ----------------------------------------------------------------------

    def close(self) -> None:
        """Wait for the save in flight, release buffers and signal hooks. Raises a pending error."""
        self._preemption.uninstall()
        try:
            self.wait()
        finally:
            if self._saver is not None:
                self._saver.buffers.clear()

    def __enter__(self) -> "CheckpointManager":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _on_run_finish(self, run: "RunHandle") -> None:
        self.close()  # a failed async save raises CheckpointError: the run ends "failed"


