"""Values computed on an accelerator that the writer thread reads later, so the caller never syncs.

Diagnostics make them (many norms at once, as one :class:`DeviceVector`); ``run.log``
makes them from CUDA scalars; the writer resolves every :class:`Deferred` before storing.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Deferred(Protocol):
    """A logged value whose conversion waits for the writer thread."""

    def resolve(self) -> float:
        """Return the value as a float; runs on the writer thread."""


class DeviceVector:
    """Many scalars computed on an accelerator, fetched to the host in one copy.

    The values are stacked into one tensor on the device; the copy into pinned memory is
    queued on the current stream with an event after it. :meth:`item` gives a
    :class:`Deferred` per element that the writer resolves, so the caller never syncs.
    On the CPU the values are read at once.

    Example::

        vector = DeviceVector(torch.stack([grad_norm, param_norm]))
        run_log({"grad_norm": vector.item(0), "param_norm": vector.item(1)})
    """

    __slots__ = ("_host", "_event", "_values")

    def __init__(self, stacked: Any) -> None:
        import torch

        source = stacked.detach().reshape(-1)
        self._event = None
        self._values: list[float] | None = None
        if source.device.type == "cuda":
            self._host = torch.empty(source.shape, dtype=source.dtype, pin_memory=True)
            self._host.copy_(source, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record(torch.cuda.current_stream(source.device))
        else:
            self._values = [float(v) for v in source.double().tolist()]

    def values(self) -> list[float]:
        if self._values is None:
            self._event.synchronize()  # type: ignore[union-attr]
            self._values = [float(v) for v in self._host.double().tolist()]
        return self._values

    def item(self, index: int) -> "float | _VectorItem":
        if self._values is not None:
            return self._values[index]
        return _VectorItem(self, index)


class _VectorItem:
    __slots__ = ("_vector", "_index")

    def __init__(self, vector: DeviceVector, index: int) -> None:
        self._vector, self._index = vector, index

    def resolve(self) -> float:
        return self._vector.values()[self._index]


