"""Checking and converting the values given to ``run.log``, on the caller's thread.

The caller pays for this on every step, so the common case (a flat dict of Python
floats and ints) takes a fast path. Everything else is converted here, where a bad type
can still raise at the call with the key named, except work that would stall the
caller: a CUDA tensor is copied to pinned host memory asynchronously and read in the
writer thread, and media objects are encoded there too. Those become :class:`Deferred`
values that the writer resolves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol

from .._util.deferred import Deferred
from ..errors import InvalidArgumentError, InvalidKeyError, InvalidValueError

if TYPE_CHECKING:
    from ..store.base import MediaRecord


class DeferredMedia(Protocol):
    """A media value (:mod:`runpoint.media`): copied on the caller, encoded by the writer.

    Classes mark themselves with ``_runpoint_media = True``; ``encode`` runs on the
    writer thread and returns a :class:`~runpoint.store.base.MediaRecord`.
    """

    _runpoint_media: bool

    def encode(self, key: str, step: int, time: float) -> "MediaRecord":
        """The stored form of the value at ``step``."""


def is_media(value: Any) -> bool:
    return getattr(type(value), "_runpoint_media", False) is True


class _DeviceScalar:
    """A one-element tensor on an accelerator, copied without a host sync.

    The copy into pinned memory is queued on the tensor's current stream and an event is
    recorded after it; only the writer thread waits for that event.
    """

    __slots__ = ("_host", "_event")

    def __init__(self, tensor: Any) -> None:
        import torch

        source = tensor.detach().reshape(())
        self._host = torch.empty((), dtype=source.dtype, pin_memory=True)
        self._host.copy_(source, non_blocking=True)
        self._event = torch.cuda.Event()
        self._event.record(torch.cuda.current_stream(source.device))

    def resolve(self) -> float:
        self._event.synchronize()
        return float(self._host.item())


def _tensor_to_value(key: str, tensor: Any) -> float | Deferred:
    if tensor.numel() != 1:
        raise InvalidValueError(
            key, tensor, f"a tensor of shape {tuple(tensor.shape)} is not a scalar; log a 0-d tensor"
        )
    if tensor.is_complex():
        raise InvalidValueError(key, tensor, "complex values are not supported")
    if tensor.device.type == "cuda":
        return _DeviceScalar(tensor)
    return float(tensor.detach().reshape(()).item())


def _convert(key: str, value: Any) -> "float | Deferred | DeferredMedia":
    """The slow path: anything that is not a plain float or int."""
    kind = type(value)
    if kind is bool:
        return 1.0 if value else 0.0
    if isinstance(value, Deferred) or is_media(value):
        return value
    module = kind.__module__
    if module.startswith("torch") and hasattr(value, "numel") and hasattr(value, "device"):
        return _tensor_to_value(key, value)
    if module == "numpy":
        if getattr(value, "ndim", 0) != 0 and getattr(value, "size", 0) != 1:
            raise InvalidValueError(key, value, f"an array of shape {value.shape} is not a scalar")
        if value.dtype.kind in "biuf":
            return float(value)
        raise InvalidValueError(key, value, f"numpy dtype {value.dtype} is not a number")
    if isinstance(value, (int, float)):  # int and float subclasses (IntEnum, ...)
        return float(value)
    if isinstance(value, str):
        raise InvalidValueError(
            key, value, "strings are not metrics; log rp.Text(...) for text, or put it in the config or run.summary"
        )
    raise InvalidValueError(key, value)


def prepare(data: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], bool]:
    """Flatten nested dicts with ``/`` and convert values.

    Returns the flat dict (values are float/int, :class:`Deferred` or media values, see
    :class:`DeferredMedia`) and whether any value is deferred. Raises :class:`~runpoint.errors.InvalidValueError` (a TypeError)
    naming the first bad key.
    """
    flat: dict[str, Any] = {}
    deferred = False
    for key, value in data.items():
        if type(key) is not str or not key:
            raise InvalidKeyError(key, prefix)
        kind = type(value)
        if kind is float or kind is int:
            flat[prefix + key if prefix else key] = value
            continue
        path = prefix + key if prefix else key
        if isinstance(value, Mapping):
            inner, inner_deferred = prepare(value, path + "/")
            flat.update(inner)
            deferred = deferred or inner_deferred
            continue
        converted = _convert(path, value)
        if type(converted) is not float:
            deferred = True
        flat[path] = converted
    return flat, deferred


def as_step(step: Any, allow_negative: bool = False) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidArgumentError("step", f"must be an int, got {type(step).__qualname__}")
    value = int(step.__index__())
    if value < 0 and not allow_negative:
        raise InvalidArgumentError("step", f"must be 0 or more, got {value}; steps count up from 0")
    return value
