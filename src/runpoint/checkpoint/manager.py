"""``CheckpointManager``: saves, retains and restores the checkpoints of a run.

It coordinates and holds no file code: what to keep is :mod:`.policy`, how bytes are
written and read is :mod:`.io`, how a checkpoint becomes visible at once is
:mod:`._atomic`, which checkpoints exist is :mod:`._directory`, how a state becomes
tensors plus msgpack is :mod:`._state`, async saves are :mod:`._async`, random
generators :mod:`._rng`. See the class docstring for the user's view.
"""

from __future__ import annotations

import atexit
import builtins
import logging
import os
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Mapping

from .. import _lifecycle
from ..errors import CheckpointError, CheckpointNotFoundError, InvalidArgumentError
from . import _atomic, _export, _rng, _state
from ._async import BackgroundSaver
from ._checks import best_policy, check_metrics, check_step, rng_names, versions
from ._directory import CheckpointDirectory
from ._preemption import PreemptionHook
from ._registration import RegistrySync
from ._restore import load_into
from ._storage import Storage
from .io import CheckpointIO, Payload, SafetensorsIO
from .load import read_checkpoint
from .manifest import CheckpointInfo, Manifest, checkpoint_name, parse_step
from .policy import (
    Mode,
    RetentionPolicy,
    SaveTrigger,
    due,
    retention_from_keywords,
    save_triggers,
)

if TYPE_CHECKING:
    from ..run import Run

logger = logging.getLogger("runpoint")

# Async managers without a run: their save in flight is committed before the interpreter
# exits (the writer thread is a daemon), and a failure is reported rather than lost.
_ASYNC_WITHOUT_RUN: "weakref.WeakSet[CheckpointManager]" = weakref.WeakSet()


@atexit.register
def _commit_saves_in_flight() -> None:
    for manager in list(_ASYNC_WITHOUT_RUN):
        try:
            manager.wait()
        except CheckpointError as exc:
            logger.error("runpoint: the last checkpoint save in %s failed: %s", manager.directory, exc)



class CheckpointManager:
    """Atomic, verified, retained checkpoints with exact resume.

    Args:
        run_or_directory: a :class:`~runpoint.Run` (checkpoints go to its
            ``checkpoints/`` directory and are registered in its store) or a directory:
            a local path or an fsspec URL such as ``s3://bucket/ckpts``.
        keep_last: keep the N most recent checkpoints.
        keep_best: keep the N best by ``monitor``; ``save`` then needs that metric.
        monitor, mode: the metric that ranks checkpoints, and whether lower (``"min"``)
            or higher (``"max"``) is better. The best is never deleted.
        keep_every_n_steps: also keep every checkpoint whose step is a multiple of N.
        save_every_n_steps, save_every_seconds: what :meth:`should_save` answers.
        async_save: ``save`` copies the state to host memory and returns; a thread writes.
        fmt: the on-disk format; ``"safetensors"`` (tensors) plus msgpack (the rest).
        compress: ``"zstd"`` to compress the files.
        rng: save and restore the Python, NumPy, torch and CUDA generator states.
        directory: with a run, put its checkpoints here instead (e.g. an ``s3://`` URL).
        storage_options: fsspec options for URLs (``{"endpoint_url": ...}``, credentials).
        retention: a :mod:`~runpoint.checkpoint.policy` object, instead of the keep_ keywords.
        io: a :class:`~runpoint.checkpoint.io.CheckpointIO` to read and write the files.

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
        run_or_directory: "Run | str | os.PathLike[str]",
        *,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: Mode = "min",
        keep_every_n_steps: int | None = None,
        save_every_n_steps: int | None = None,
        save_every_seconds: float | None = None,
        async_save: bool = False,
        fmt: str = "safetensors",
        compress: str | None = None,
        rng: bool = True,
        directory: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        retention: RetentionPolicy | None = None,
        io: CheckpointIO | None = None,
    ) -> None:
        from ..run import Run

        if isinstance(run_or_directory, Run):
            self.run: Run | None = run_or_directory
            location: Any = directory if directory is not None else run_or_directory.dir / "checkpoints"
        elif isinstance(run_or_directory, (str, os.PathLike)):
            if directory is not None:
                raise InvalidArgumentError("directory", "only goes with a run; give the directory as the first argument")
            self.run, location = None, run_or_directory
        else:
            raise InvalidArgumentError(
                "run_or_directory", f"must be a run from rp.init() or a directory, not {type(run_or_directory).__qualname__}"
            )
        if fmt != "safetensors":
            raise InvalidArgumentError("fmt", f"{fmt!r} is not supported; checkpoints are 'safetensors' (never pickle)")
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise InvalidArgumentError("monitor", f"must be a metric name, got {monitor!r}")
        keywords = (keep_last, keep_best, keep_every_n_steps)
        if retention is not None:
            if any(k is not None for k in keywords):
                raise InvalidArgumentError("retention", "give retention= or keep_last/keep_best/keep_every_n_steps, not both")
            if not isinstance(retention, RetentionPolicy):
                raise InvalidArgumentError("retention", f"{retention!r} has no keep(checkpoints) method")
            self.retention: RetentionPolicy = retention
        else:
            self.retention = retention_from_keywords(keep_last, keep_best, monitor, mode, keep_every_n_steps)
        ranking = best_policy(self.retention)
        if monitor is None and ranking is not None:
            monitor, mode = ranking.monitor, ranking.mode
        if mode not in ("min", "max"):
            raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        self.mode: Mode = mode
        self._needs_monitor = ranking is not None
        self._triggers: tuple[SaveTrigger, ...] = save_triggers(save_every_n_steps, save_every_seconds)
        if io is not None and compress is not None:
            raise InvalidArgumentError("compress", "give it to your io object, not beside io=")
        self.io: CheckpointIO = io if io is not None else SafetensorsIO(compress)
        self.rng = bool(rng)

        self._storage = Storage(location, storage_options)
        self._storage_options = dict(storage_options) if storage_options is not None else None
        try:
            self._storage.makedirs()
            removed = _atomic.cleanup_leftovers(self._storage)
        except OSError as exc:
            raise CheckpointError(f"cannot use {self._storage.display()} for checkpoints: {exc}", self._storage.display()) from exc
        if removed:
            logger.info("runpoint: removed %d leftover(s) of interrupted saves in %s", len(removed), self.directory)
        self._dir = CheckpointDirectory(self._storage)
        self._dir.refresh()
        self._dir.write_pointers(self.latest, self.best, with_best=self.monitor is not None, only_if_stale=True)
        self._lock = threading.RLock()
        self._writing_thread: int | None = None
        self._saver = BackgroundSaver(self.run.id if self.run else "dir") if async_save else None
        self._started = time.monotonic()
        self._last_save_time: float | None = None
        self._last_save_step: int | None = None
        self.restored_step: int | None = None  # the step of the checkpoint the last restore() loaded
        self._preemption = PreemptionHook(
            self._save_now, self.wait, lambda: self._writing_thread == threading.get_ident(), self._saved_by_now
        )
        self._saved_here: set[int] = set()  # sequences committed by this manager
        self._registry = RegistrySync(self.run, self._storage) if self.run is not None else None
        if self._registry is not None and self.run is not None:
            self._registry.reconcile(self._dir.list(), self.best)
            self.run.add_finish_hook(self._on_run_finish)
        elif self._saver is not None:
            _ASYNC_WITHOUT_RUN.add(self)  # nothing else would wait for its last save at exit

    def __repr__(self) -> str:
        return f"CheckpointManager({self.directory!r}, retention={self.retention!r})"

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
        if self._preemption.pending is not None:
            return True
        if not self._triggers and self._preemption.at_boundary:
            return False
        if self._triggers and step == self._last_save_step:
            return False
        since = time.monotonic() - (self._last_save_time if self._last_save_time is not None else self._started)
        return due(self._triggers, step, self._last_save_step, since)

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
        if self._needs_monitor and self.monitor not in metrics and self._preemption.pending is None:
            # (a save forced by preemption mid-epoch has no validation metrics; it cannot be best)
            raise InvalidArgumentError(
                "metrics", f"keep_best is set, so save() needs metrics[{self.monitor!r}] (got {sorted(metrics) or 'none'})"
            )
        if self._saver is not None:
            self._saver.wait()  # one save in flight; an earlier failure surfaces here
        encoded = _state.encode(state, _rng.capture() if self.rng else None)
        rngs = rng_names(self.rng)
        self._last_save_step, self._last_save_time = step, time.monotonic()
        if self._saver is None:
            info = self._write(step, Payload(encoded.tensors, encoded.structure), encoded.keys, metrics, rngs)
        else:
            host = self._saver.buffers.snapshot(encoded.tensors)
            payload = Payload(host, encoded.structure)
            self._saver.submit(lambda: self._write(step, payload, encoded.keys, metrics, rngs))
            info = None
        self._exit_if_preempted()
        return info

    def _exit_if_preempted(self) -> None:
        """After the step-boundary save a preemption signal asked for: commit, then exit."""
        signum = self._preemption.pending
        if signum is None:
            return
        self._preemption.pending = None
        self.wait()  # an async save must be committed before the process goes
        logger.warning("runpoint: signal %d: saved step %d; exiting", signum, self._last_save_step)
        _lifecycle.exit_for_signal(signum)

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
        name = checkpoint_name(step)
        try:
            staging = _atomic.Staging(self._storage, name)
        except OSError as exc:
            raise self._save_error(step, exc) from exc
        try:
            files = self.io.save(self._storage, staging.path, payload)
            manifest = Manifest(
                step=step, sequence=self._dir.next_sequence(), created_at=time.time(), files=files,
                metrics=metrics, keys=keys, rng=rng_names, compression=getattr(self.io, "compress", None),
                run_id=self.run.id if self.run is not None else None, tensors=len(payload.tensors),
                versions=versions(),
            )
            self._flush_run()  # what was logged up to this save is stored before the save commits
            staging.commit(manifest.to_json())
        except OSError as exc:
            staging.abort()
            raise self._save_error(step, exc) from exc
        except BaseException:
            staging.abort()
            raise
        info = CheckpointInfo(
            step=step, path=self._storage.display(name), created_at=manifest.created_at,
            bytes=manifest.total_bytes, metrics=metrics, manifest=manifest,
        )
        self._dir.add(info)
        self._saved_here.add(manifest.sequence)
        self._after_commit(info)
        return info

    def _save_error(self, step: int, exc: OSError) -> CheckpointError:
        reason = {
            28: "the disk is full", 122: "the disk quota is exceeded", 13: "permission denied",
            1: "operation not permitted", 30: "the file system is read-only",
        }.get(exc.errno or 0, exc.strerror or str(exc))
        return CheckpointError(
            f"could not save the checkpoint of step {step} in {self.directory}: {reason} ({exc}); "
            "the checkpoints saved before are untouched", self.directory,
        )

    def _flush_run(self) -> None:
        if self.run is None:
            return
        try:
            self.run.flush(timeout=60)
        except Exception as exc:  # the checkpoint matters more than the metrics index
            logger.warning("runpoint: could not flush the metrics of run %s before a checkpoint: %s", self.run.id, exc)

    def _after_commit(self, info: CheckpointInfo) -> None:
        best = self.best
        self._dir.write_pointers(info, best, with_best=self.monitor is not None)
        if self._registry is not None:
            self._registry.added(info, is_best=best is not None and best.step == info.step)
            if best is not None and best.step != info.step:
                self._registry.best_is(best.step)
        self._apply_retention()

    # -- retention -------------------------------------------------------------------

    def _apply_retention(self) -> builtins.list[int]:
        """Delete what the policy does not keep; never the latest, the best, or one being read."""
        with self._lock:
            try:
                checkpoints = self._dir.refresh()
            except OSError as exc:
                logger.warning("runpoint: could not list %s for retention: %s", self.directory, exc)
                return []
            keep = self.retention.keep(checkpoints)
            for protected in (self.latest, self.best):
                if protected is not None:
                    keep.add(protected.step)
            deleted = []
            for info in sorted(checkpoints, key=lambda c: c.sequence):
                if info.step in keep:
                    continue
                try:
                    removed = _atomic.remove(self._storage, info.name, self.io.remove)
                except OSError as exc:
                    logger.warning("runpoint: could not delete checkpoint %s: %s", info.path, exc)
                    continue
                if removed:
                    self._dir.discard(info.step)
                    deleted.append(info.step)
                    if self._registry is not None:
                        self._registry.deleted(info.step)
            return deleted

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
        candidates = self._candidates(which)
        corrupt: builtins.list[str] = []
        if which == "latest":  # a newer checkpoint whose manifest is unreadable is a corrupt latest, not nothing
            newest = max((info.step for info in candidates), default=-1)
            for name, reason in sorted(self._dir.broken.items()):
                if (parse_step(name) or 0) > newest:
                    corrupt.append(f"{self.directory.rstrip('/')}/{name}: {reason}")
                    logger.warning("runpoint: %s/%s: %s; falling back to an older checkpoint", self.directory, name, reason)
        for info in candidates:
            try:
                manifest, document, tensors = read_checkpoint(self._storage, info.name, self.io)
            except CheckpointNotFoundError:
                if which != "latest":
                    raise
                continue  # deleted meanwhile by another process's retention
            except CheckpointError as exc:
                if which != "latest":
                    raise
                corrupt.append(f"{info.path}: {exc}")
                logger.warning("runpoint: %s; falling back to an older checkpoint", exc)
                continue
            load_into(state, document["state"], tensors, strict=strict, map_location=map_location,  # type: ignore[arg-type]
                      where=info.path)
            if self.rng and "rng" in document:
                _rng.restore(_state.materialize(document["rng"], tensors))
            if corrupt:
                logger.warning("runpoint: restored step %d of %s instead of the corrupt latest", info.step, self.directory)
            self._after_restore(manifest)
            self.restored_step = info.step
            return info.step + 1
        if corrupt:
            raise CheckpointError(
                f"no intact checkpoint in {self.directory}: " + "; ".join(corrupt), self.directory
            )
        return None

    def _candidates(self, which: Any) -> builtins.list[CheckpointInfo]:
        self._dir.refresh()
        if which == "latest":
            return self._dir.by_recency()
        if which == "best" and self.monitor is None:
            raise InvalidArgumentError("which", "'best' needs a manager with monitor=")
        picked = self._dir.pick(which, self.monitor, self.mode)
        return [picked] if picked is not None else []

    def _after_restore(self, manifest: Manifest) -> None:
        self._last_save_step, self._last_save_time = manifest.step, time.monotonic()
        run = self.run
        if run is not None and run.resumed and manifest.run_id == run.id:
            dropped = run.rewind(manifest.step)
            if dropped:
                logger.info("runpoint: run %s resumes after step %d; dropped %d points the stopped attempt "
                            "logged after it", run.id, manifest.step, dropped)

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
        if which == "best" and self.monitor is None:
            raise InvalidArgumentError("which", "the manager has no monitor, so no best checkpoint; pass which='latest'")
        self._dir.refresh()
        info = self._dir.pick(which, self.monitor, self.mode)
        if info is None:
            raise CheckpointNotFoundError(self.directory)
        manifest, document, tensors = read_checkpoint(self._storage, info.name, self.io)
        weights = _export.weights_of(document["state"], tensors, manifest, key, info.path)
        metadata = {"format": "pt", "step": str(info.step), "source": info.path}
        options = storage_options if storage_options is not None else self._storage_options
        return _export.write_weights(path, weights, metadata, options)

    # -- preemption ------------------------------------------------------------------

    def save_on_preemption(self, get_state: Callable[[], Any] | None = None) -> None:
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

        Example::

            ckpt.save_on_preemption()
            for step in range(start, total):
                train_step()
                if ckpt.should_save(step):   # every N steps, and right after a SIGTERM
                    ckpt.save(step, state)   # after a SIGTERM: save, then exit
        """
        self._preemption.install(get_state, self.run)

    def _save_now(self, step: int, state: Mapping[str, Any], metrics: Any) -> CheckpointInfo:
        encoded = _state.encode(state, _rng.capture() if self.rng else None)
        payload = Payload(encoded.tensors, encoded.structure)
        return self._write(check_step(step), payload, encoded.keys, check_metrics(metrics), rng_names(self.rng))

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

    def _on_run_finish(self, run: "Run") -> None:
        self.close()  # a failed async save raises CheckpointError: the run ends "failed"

