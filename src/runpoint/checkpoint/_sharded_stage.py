"""Staging a sharded save to host memory, so it can be written while training goes on.

:func:`stage` copies every tensor of a prepared save (DCP's state dicts: plain tensors and
DTensors' local shards; the encoded rest) into :class:`~._async.HostBuffers` (reused by
the next save, pinned for CUDA tensors) and rebuilds the state dicts around the copies: a
DTensor becomes a DTensor with the same mesh, placements and global shape whose local
shard is the host copy, so DCP plans and writes exactly what it would have from the live
one. Everything else (learning rates, parameter names) is deep-copied. Only this runs
while ``save()`` blocks; the write and the collective commit run on a background thread.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ._async import HostBuffers
from .sharded import PreparedSave


def _collect(value: Any, path: str, out: dict[str, Any]) -> None:
    import torch
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        out[path] = value.to_local().detach()
    elif isinstance(value, torch.Tensor):
        out[path] = value.detach()
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, f"{path}/{key!r}", out)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _collect(item, f"{path}/{index}", out)


def _rebuild(value: Any, path: str, copies: dict[str, Any]) -> Any:
    import torch
    from torch.distributed.tensor import DTensor

    if isinstance(value, DTensor):
        return DTensor.from_local(copies[path], device_mesh=value.device_mesh, placements=value.placements,
                                  run_check=False, shape=value.shape, stride=value.stride())
    if isinstance(value, torch.Tensor):
        return copies[path]
    if isinstance(value, dict):
        return {key: _rebuild(item, f"{path}/{key!r}", copies) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rebuild(item, f"{path}/{index}", copies) for index, item in enumerate(value))
    return copy.deepcopy(value)


def stage(prepared: PreparedSave, buffers: HostBuffers) -> PreparedSave:
    """``prepared`` with every tensor copied to host memory (valid until the next ``stage`` with ``buffers``)."""
    tensors: dict[str, Any] = {}
    _collect(prepared.sharded, "dcp", tensors)
    tensors.update({f"rest/{name}": tensor for name, tensor in prepared.encoded.tensors.items()})
    copies = buffers.snapshot(tensors)  # one call: it also drops the buffers of tensors gone since the last save
    sharded = _rebuild(prepared.sharded, "dcp", copies)
    encoded = dataclasses.replace(prepared.encoded,
                                  tensors={name: copies[f"rest/{name}"] for name in prepared.encoded.tensors})
    return dataclasses.replace(prepared, sharded=sharded, encoded=encoded)
