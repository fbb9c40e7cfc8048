"""Saving on preemption: SIGTERM (Kubernetes, most schedulers) and SIGUSR1 (SLURM).

Two modes:

- At the next step boundary (``save_on_preemption()`` without a getter; the exact one).
  The signal is only noted; the loop's next ``should_save(step)`` answers True, the
  ``save()`` that follows commits the checkpoint of a completed step, and then the process
  exits (``SystemExit``, so ``finally`` blocks run and the run ends ``killed``). A second
  signal before that exits at once.
- At once (``save_on_preemption(getter)``). :class:`PreemptionHook` asks the getter for
  ``(step, state[, metrics])``, waits for an async save in flight, saves synchronously and
  returns; :mod:`runpoint.run.lifecycle` then raises ``SystemExit``. The getter runs inside
  the signal handler, at whatever Python statement the main thread had reached: inside
  ``optimizer.step()``, say, where the model is half updated. Use it when a step takes
  longer than the scheduler's grace period.

A signal that arrives while this thread is itself in the middle of a save cannot wait
for that save (it is further down the same stack): the hook then skips, the interrupted
save is abandoned (cleaned at the next start) and the previous checkpoint stays the
latest.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any, Callable, Mapping

from ..errors import CheckpointError, InvalidArgumentError
from ..run import lifecycle

logger = logging.getLogger("runpoint")

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
Getter = Callable[[], Any]


class PreemptionHook:
    def __init__(
        self, save: Callable[[int, Mapping[str, Any], Any], Any], wait_pending: Callable[[], Any],
        saving_here: Callable[[], bool], already_saved: Callable[[int], bool],
    ) -> None:
        self._save = save
        self._wait_pending = wait_pending
        self._saving_here = saving_here
        self._already_saved = already_saved
        self.getter: Getter | None = None
        self.at_boundary = False
        self.pending: int | None = None  # a signal whose save waits for the next step boundary
        self.check_every = 1  # multi-rank: should_save() calls per agreement on a signal (a collective)
        self._installed = False

    def install(self, getter: Getter | None, run: Any) -> None:
        if getter is not None and not callable(getter):
            raise InvalidArgumentError("get_state", "must be a function returning (step, state), or None")
        self.getter = getter
        self.at_boundary = getter is None
        if self._installed:
            return
        self._installed = True
        if run is not None:
            run.add_signal_hook(self)
            handled = all(lifecycle.handle_signal(s) for s in SIGNALS)
        else:
            lifecycle.add_signal_callback(self, SIGNALS)
            handled = threading.current_thread() is threading.main_thread()
        if not handled:
            logger.warning("runpoint: preemption saves need save_on_preemption() to be called from the main thread")

    def poll(self) -> int | None:
        """The signal whose save waits for this step boundary, or None (in a multi-rank job, agreed by all)."""
        return self.pending

    def uninstall(self) -> None:
        lifecycle.remove_signal_callback(self)
        self.getter = None
        self.at_boundary = False

    def exit_if_pending(self, saved_step: int | None) -> None:
        """After the step-boundary save a signal asked for: wait for it to commit, then exit."""
        signum = self.pending
        if signum is None:
            return
        self.pending = None
        self._wait_pending()  # an async save must be committed before the process goes
        logger.warning("runpoint: signal %d: saved step %s; exiting", signum, saved_step)
        lifecycle.exit_for_signal(signum)

    def __call__(self, signum: int) -> bool | None:
        if self.at_boundary:
            self.pending = signum
            logger.warning("runpoint: signal %d: saving at the next step boundary, then exiting "
                           "(a second signal exits at once)", signum)
            return True  # defer the exit until the save
        getter = self.getter
        if getter is None:
            return None
        if self._saving_here():
            logger.warning("runpoint: signal %d arrived during a checkpoint save; the process exits without "
                           "finishing it (the previous checkpoint stays the latest)", signum)
            return None
        try:
            self._wait_pending()
        except CheckpointError as exc:
            logger.error("runpoint: the async save before the preemption failed: %s", exc)
        result = getter()
        if result is None:
            return None
        step, state = result[0], result[1]
        if self._already_saved(step):
            logger.warning("runpoint: signal %d: step %d is already saved", signum, step)
            return None
        info = self._save(step, state, result[2] if len(result) > 2 else None)
        logger.warning("runpoint: signal %d: saved checkpoint %s before exiting", signum, info.path)
        return None
