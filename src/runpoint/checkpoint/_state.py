"""A checkpoint's ``state`` as two parts: its tensors, and everything else as msgpack.

``encode`` walks the state the user passed to ``save``. Objects with ``state_dict()``
are replaced by their state dict, tensors by a reference into the safetensors file, and
the rest must be plain data: None, bool, int, float, str, bytes, lists, tuples, dicts,
NumPy arrays and scalars, torch dtypes and generator objects. msgpack keeps what JSON
would lose (integer dict keys as in optimizer state, tuples, NaN, bytes, 128-bit ints);
the few types it lacks travel as msgpack extension types. Anything else raises
:class:`~runpoint.errors.CheckpointError` naming its key, before a byte is written.

``decode`` reverses it without executing code: only the extension types listed here
are accepted, and a NumPy array may only have a numeric dtype.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Mapping

import msgpack

from ..errors import CheckpointError, InvalidArgumentError
from . import _rng
from ._safetensors import dtype_code

STRUCTURE_VERSION = 1

EXT_TUPLE = 1
EXT_TENSOR = 2
EXT_NDARRAY = 3
EXT_STATEFUL = 4
EXT_BIGINT = 5
EXT_DTYPE = 6

_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1


@dataclass(frozen=True)
class TensorRef:
    """Where a tensor of the structure lives in the safetensors file."""

    name: str
    device: str


@dataclass(frozen=True)
class Stateful:
    """The saved state of an object: ``state_dict:<class>`` or ``generator:<kind>``."""

    kind: str
    state: Any

    @property
    def is_generator(self) -> bool:
        return self.kind.startswith("generator:")


@dataclass
class EncodedState:
    tensors: dict[str, Any]  # name -> detached tensor, on whatever device it lives
    structure: bytes
    keys: dict[str, str]  # top-level key -> kind, for the manifest

    @property
    def tensor_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())


def render(path: tuple[Any, ...]) -> str:
    """``state['optimizer']['state'][0]`` for a path of keys."""
    return "state" + "".join(f"[{key!r}]" for key in path)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def top_level_kind(value: Any) -> str:
    torch = sys.modules.get("torch")
    if torch is not None:
        if isinstance(value, torch.nn.Module):
            return "module"
        if isinstance(value, torch.optim.Optimizer):
            return "optimizer"
        if isinstance(value, torch.optim.lr_scheduler.LRScheduler):
            return "scheduler"
        if isinstance(value, torch.Tensor):
            return "tensor"
    if _rng.generator_kind(value):
        return "generator"
    if callable(getattr(value, "state_dict", None)):
        return "state_dict"
    return "value"


class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, Any] = {}
        self._seen: dict[tuple[Any, ...], str] = {}

    def encode(self, value: Any, path: tuple[Any, ...]) -> Any:
        kind = type(value)
        if value is None or kind is bool or kind is str or kind is bytes or kind is float:
            return value
        if kind is int:
            return value if _INT64_MIN <= value <= _UINT64_MAX else msgpack.ExtType(EXT_BIGINT, str(value).encode())
        if _is_tensor(value):
            return self._tensor(value, path)
        np = sys.modules.get("numpy")
        if np is not None:
            if isinstance(value, np.ndarray):
                return self._ndarray(np, value, path)
            if isinstance(value, np.generic):
                return self.encode(value.item(), path)
        generator = _rng.generator_kind(value)
        if generator is not None:
            state = self.encode(_rng.generator_state(value, generator), path)
            return msgpack.ExtType(EXT_STATEFUL, _pack([generator, state]))
        if callable(getattr(value, "state_dict", None)) and callable(getattr(value, "load_state_dict", None)):
            try:
                state_dict = value.state_dict()
            except Exception as exc:
                raise CheckpointError(f"cannot save {render(path)}: its state_dict() raised {exc!r}") from exc
            kind_name = f"state_dict:{type(value).__module__}.{type(value).__qualname__}"
            return msgpack.ExtType(EXT_STATEFUL, _pack([kind_name, self.encode(state_dict, path)]))
        if isinstance(value, Mapping):
            encoded = {}
            for key, item in value.items():
                if not (key is None or type(key) in (str, int, float, bool)):
                    raise CheckpointError(
                        f"cannot save {render(path)}: the key {key!r} is a {type(key).__qualname__}; "
                        "dict keys must be str, int, float, bool or None"
                    )
                encoded[key] = self.encode(item, (*path, key))
            return encoded
        if isinstance(value, list):
            return [self.encode(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, tuple):
            items = [self.encode(item, (*path, index)) for index, item in enumerate(value)]
            return msgpack.ExtType(EXT_TUPLE, _pack(items))
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(value, torch.dtype):
            return msgpack.ExtType(EXT_DTYPE, str(value).removeprefix("torch.").encode())
        for base in (bool, int, float, str):  # IntEnum, str subclasses...: stored as the base type
            if isinstance(value, base):
                return self.encode(base(value), path)
        raise CheckpointError(
            f"cannot save {render(path)}: a value of type {kind.__module__}.{kind.__qualname__} is not "
            "supported; save tensors, numbers, strings, lists, dicts, NumPy arrays or objects with "
            "state_dict()/load_state_dict() (runpoint never pickles)"
        )

    def _tensor(self, value: Any, path: tuple[Any, ...]) -> Any:
        import torch

        problem = None
        if value.layout != torch.strided:
            problem = f"{value.layout} tensors are not supported (convert with .to_dense())"
        elif value.is_quantized:
            problem = "quantized tensors are not supported (save int_repr() and the scale)"
        elif value.device.type == "meta":
            problem = "a tensor on the meta device has no data"
        elif dtype_code(value.dtype) is None:
            problem = f"dtype {value.dtype} cannot be stored in safetensors"
        if problem:
            raise CheckpointError(f"cannot save {render(path)}: {problem}")
        identity = (value.data_ptr(), value.dtype, tuple(value.shape), tuple(value.stride()), str(value.device))
        name = self._seen.get(identity) if value.numel() else None
        if name is None:  # tied weights are stored once and referenced twice
            name = base = "/".join(str(key) for key in path) or "tensor"
            counter = 1
            while name in self.tensors:
                counter += 1
                name = f"{base}~{counter}"
            self.tensors[name] = value.detach()
            self._seen[identity] = name
        return msgpack.ExtType(EXT_TENSOR, _pack([name, str(value.device)]))

    def _ndarray(self, np: Any, value: Any, path: tuple[Any, ...]) -> Any:
        if value.dtype.hasobject or value.dtype.kind not in "biufc":
            raise CheckpointError(f"cannot save {render(path)}: NumPy arrays of dtype {value.dtype} are not supported")
        data = np.ascontiguousarray(value).tobytes()
        return msgpack.ExtType(EXT_NDARRAY, _pack([value.dtype.str, list(value.shape), data]))


def encode(state: Mapping[str, Any], rng: dict[str, Any] | None) -> EncodedState:
    """Split ``state`` (and the RNG states, when given) into tensors and msgpack bytes."""
    if not isinstance(state, Mapping):
        raise InvalidArgumentError("state", f"must be a dict of names to objects, not {type(state).__qualname__}")
    encoder = _Encoder()
    body: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise InvalidArgumentError("state", f"top-level keys must be strings, got {key!r}")
        body[key] = encoder.encode(value, (key,))
        keys[key] = top_level_kind(value)
    document: dict[str, Any] = {"version": STRUCTURE_VERSION, "state": body}
    if rng is not None:
        document["rng"] = encoder.encode(rng, ("<rng>",))
    return EncodedState(tensors=encoder.tensors, structure=_pack(document), keys=keys)


# -- decoding ------------------------------------------------------------------------


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False, use_list=True)


def _ext_hook(code: int, data: bytes) -> Any:
    if code == EXT_TUPLE:
        return tuple(_unpack(data))
    if code == EXT_TENSOR:
        name, device = _unpack(data)
        return TensorRef(str(name), str(device))
    if code == EXT_STATEFUL:
        kind, state = _unpack(data)
        return Stateful(str(kind), state)
    if code == EXT_BIGINT:
        return int(data.decode("ascii"))
    if code == EXT_NDARRAY:
        import numpy as np

        dtype_text, shape, raw = _unpack(data)
        dtype = np.dtype(str(dtype_text))
        if dtype.hasobject or dtype.kind not in "biufc":
            raise ValueError(f"refusing a NumPy array of dtype {dtype}")
        return np.frombuffer(raw, dtype=dtype).reshape([int(d) for d in shape]).copy()
    if code == EXT_DTYPE:
        import torch

        found = getattr(torch, data.decode("ascii"), None)
        if not isinstance(found, torch.dtype):
            raise ValueError(f"{data!r} is not a torch dtype")
        return found
    raise ValueError(f"unknown msgpack extension type {code}")


def decode(structure: bytes) -> dict[str, Any]:
    """The document ``encode`` wrote: ``{"state": ..., "rng": ...}``; ValueError if invalid."""
    try:
        document = _unpack(structure)
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ValueError(f"unreadable state: {exc}") from None
    except RecursionError:  # extension types nested inside each other, deeper than Python goes
        raise ValueError("unreadable state: nested too deeply") from None
    if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
        raise ValueError("unreadable state: not a runpoint state document")
    if int(document.get("version", 0)) > STRUCTURE_VERSION:
        raise ValueError("the state was written by a newer runpoint; upgrade runpoint to read it")
    return document


def target_device(ref: TensorRef, map_location: Any) -> Any:
    """Where a loaded tensor goes: ``map_location``, else where it was saved if that exists."""
    if map_location is not None:
        return map_location
    if ref.device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return ref.device
    return None


def materialize(value: Any, tensors: Mapping[str, Any], map_location: Any = None, own: bool = True) -> Any:
    """Plain values: tensors in place of references, state dicts in place of objects.

    Loaded tensors may view a memory-mapped checkpoint file. With ``own`` (the default)
    every tensor returned has memory of its own, so that no mapping outlives the load (a
    deleted checkpoint whose file stayed mapped would keep its disk space); ``own=False``
    is for tensors that are only copied from, as ``Module.load_state_dict`` does.
    """
    if isinstance(value, TensorRef):
        tensor = tensors[value.name]
        device = target_device(value, map_location)
        moved = tensor if device is None else tensor.to(device)
        return moved.clone() if own and moved is tensor else moved
    if isinstance(value, Stateful):
        state = materialize(value.state, tensors, map_location, own)
        return _rng.restore_generator(value.kind, state) if value.is_generator else state
    if isinstance(value, dict):
        return {key: materialize(item, tensors, map_location, own) for key, item in value.items()}
    if isinstance(value, list):
        return [materialize(item, tensors, map_location, own) for item in value]
    if isinstance(value, tuple):
        return tuple(materialize(item, tensors, map_location, own) for item in value)
    return value
