"""Async saves: copy the state to host memory, then write and commit on a thread.

``save()`` with ``async_save=True`` blocks only while the tensors are copied into host
buffers; the training loop may change its tensors as soon as it returns. The buffers
are kept and reused by the next save (same names, dtypes and shapes), so steady-state
saves allocate nothing; for CUDA tensors they are pinned, so the device-to-host copies
run at full bus speed and are issued without waiting, with one synchronization at the
end. One save is in flight at a time: the next ``save()`` first waits for the previous
one. An exception on the thread is kept and raised by the next ``save()``, ``wait()``
or the end of the run.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any, Callable

from ..errors import CheckpointError

logger = logging.getLogger("runpoint")

# Async managers without a run: their save in flight is committed before the interpreter
# exits (the writer thread is a daemon), and a failure is reported rather than lost.
_WITHOUT_RUN: "weakref.WeakSet[Any]" = weakref.WeakSet()


def wait_at_exit(manager: Any) -> None:
    """Wait for ``manager``'s save in flight when the interpreter exits (no run would)."""
    _WITHOUT_RUN.add(manager)


@atexit.register
def _commit_saves_in_flight() -> None:
    for manager in list(_WITHOUT_RUN):
        try:
            manager.wait()
        except CheckpointError as exc:
            logger.error("runpoint: the last checkpoint save in %s failed: %s", manager.directory, exc)


class HostBuffers:
    """Reusable host copies of tensors, by name."""

    def __init__(self) -> None:
        self._buffers: dict[str, Any] = {}

    def snapshot(self, tensors: dict[str, Any]) -> dict[str, Any]:
        """Host copies of ``tensors``, valid until the next call."""
        import torch

        copies: dict[str, Any] = {}
        devices = set()
        for name, tensor in tensors.items():
            buffer = self._buffers.get(name)
            pin = tensor.device.type == "cuda"
            if (
                buffer is None or buffer.dtype != tensor.dtype or buffer.shape != tensor.shape
                or buffer.is_pinned() != pin
            ):
                buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=pin)
                self._buffers[name] = buffer
            buffer.copy_(tensor, non_blocking=pin)
            if pin:
                devices.add(tensor.device)
            copies[name] = buffer
        for device in devices:
            torch.cuda.synchronize(device)
        for stale in set(self._buffers) - set(tensors):
            del self._buffers[stale]
        return copies

    def clear(self) -> None:
        self._buffers.clear()


class BackgroundSaver:
    """Runs one save at a time on a daemon thread and keeps its outcome."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._result: Any = None
        self.buffers = HostBuffers()

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, work: Callable[[], Any]) -> None:
        """Start ``work`` on the thread; the previous save must have been waited for."""
        assert not self.busy, "one async save at a time"

        def run() -> None:
            try:
                self._result = work()
            except BaseException as exc:  # kept for the caller's thread
                self._error = exc

        self._result = None
        self._thread = threading.Thread(target=run, name=f"runpoint-ckpt-{self._name}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the save in flight is done; re-raise its error once. Returns its result."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise CheckpointError(f"the async checkpoint save did not finish within {timeout} s")
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            if isinstance(error, CheckpointError):
                raise error
            raise CheckpointError(f"the async checkpoint save failed: {error!r}") from error
        return self._result
