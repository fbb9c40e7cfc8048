"""Writing and reading the safetensors format without extra copies.

The format (https://github.com/huggingface/safetensors) is an 8-byte little-endian
header length, a JSON header naming each tensor's dtype, shape and byte range, then
the raw bytes of the tensors back to back. ``safetensors.torch.save_file`` first
gathers every tensor's bytes into Python objects; for a checkpoint of several GiB that
is a second copy of the state in memory and a slower save. Here each tensor's memory is
written as it is, through a ``memoryview``, and read back straight into the memory of a
newly allocated tensor, hashing as the bytes pass. Files written here are ordinary
safetensors files: ``safetensors.torch.load_file`` reads them (a test checks it).

Tensors are laid out by decreasing element size, so every tensor starts at an offset
that is a multiple of its element size, as torch needs to view the bytes.
"""

from __future__ import annotations

import functools
import json
import struct
from typing import Any, Callable

MAX_HEADER_BYTES = 100 * 2**20

_DTYPE_NAMES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
    "F8_E4M3": "float8_e4m3fn", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2": "float8_e5m2", "F8_E5M2FNUZ": "float8_e5m2fnuz", "C64": "complex64",
}


@functools.lru_cache(maxsize=1)
def _torch_dtypes() -> tuple[dict[Any, str], dict[str, Any]]:
    import torch

    to_torch = {code: getattr(torch, name) for code, name in _DTYPE_NAMES.items() if hasattr(torch, name)}
    return {dtype: code for code, dtype in to_torch.items()}, to_torch


def dtype_code(dtype: Any) -> str | None:
    """The safetensors name of a torch dtype, or None if the format cannot hold it."""
    return _torch_dtypes()[0].get(dtype)


def byte_view(tensor: Any) -> memoryview:
    """The bytes of a contiguous CPU tensor, without copying them."""
    import torch

    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:
        return memoryview(b"")
    return memoryview(flat.view(torch.uint8).numpy()).cast("B")


def layout(tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> tuple[bytes, list[tuple[str, Any]]]:
    """The header bytes and the order in which tensor bytes follow it."""
    codes = _torch_dtypes()[0] if tensors else {}  # a state without tensors needs no torch
    ordered = sorted(tensors.items(), key=lambda item: (-item[1].element_size(), item[0]))
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    for name, tensor in ordered:
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": codes[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(len(text) + 8) % 8)  # tensor data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text, ordered


def write(
    out: Any, tensors: dict[str, Any], metadata: dict[str, str] | None = None,
    to_host: Callable[[Any], Any] | None = None,
) -> int:
    """Write ``tensors`` as one safetensors file to ``out.write``; returns the bytes written.

    ``to_host`` turns a tensor into a contiguous CPU tensor (one at a time, so a GPU
    state never needs a second full copy in host memory).
    """
    header, ordered = layout(tensors, metadata)
    out.write(header)
    total = len(header)
    for _, tensor in ordered:
        host = to_host(tensor) if to_host is not None else tensor
        view = byte_view(host)
        out.write(view)
        total += len(view)
    return total


def _read_exactly(stream: Any, view: memoryview) -> None:
    filled = 0
    while filled < len(view):
        count = stream.readinto(view[filled:])
        if not count:
            raise ValueError(f"the file ends {len(view) - filled} bytes early")
        filled += count


def read(stream: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a whole safetensors stream into new CPU tensors; returns (tensors, metadata)."""
    prefix = bytearray(8)
    _read_exactly(stream, memoryview(prefix))
    (length,) = struct.unpack("<Q", prefix)
    if length > MAX_HEADER_BYTES:
        raise ValueError(f"header of {length} bytes is implausibly large")
    raw = bytearray(length)
    _read_exactly(stream, memoryview(raw))
    header = json.loads(raw)
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    to_torch = _torch_dtypes()[1] if header else {}
    entries = sorted(header.items(), key=lambda item: item[1]["data_offsets"][0])
    expected = 0
    tensors: dict[str, Any] = {}
    for name, entry in entries:
        dtype = to_torch.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {name!r} has an unknown dtype {entry['dtype']!r}")
        shape = [int(d) for d in entry["shape"]]
        start, stop = (int(x) for x in entry["data_offsets"])
        import torch

        tensor = torch.empty(shape, dtype=dtype)
        size = tensor.numel() * tensor.element_size()
        if start != expected or stop - start != size:
            raise ValueError(f"tensor {name!r} has byte range {start}..{stop}, expected {expected}..{expected + size}")
        if size:
            _read_exactly(stream, byte_view(tensor))
        expected = stop
        tensors[name] = tensor
    if stream.read(1):
        raise ValueError("unexpected bytes after the last tensor")
    return tensors, {str(k): str(v) for k, v in metadata.items()}



def from_buffer(buffer: Any) -> dict[str, Any]:
    """Tensors viewing the bytes of a whole safetensors file held in ``buffer`` (no copy).

    With a copy-on-write ``mmap`` of the file as the buffer, restoring costs one copy (into
    the model's parameters) instead of two; tensors kept as they are (optimizer state) get
    private pages only where they are later written.
    """
    view = memoryview(buffer)
    if len(view) < 8:
        raise ValueError("the file is too short for a safetensors header")
    (length,) = struct.unpack("<Q", view[:8])
    if length > min(MAX_HEADER_BYTES, len(view) - 8):
        raise ValueError(f"header of {length} bytes does not fit the file")
    header = json.loads(bytes(view[8:8 + length]))
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    header.pop("__metadata__", None)
    start_of_data = 8 + length
    to_torch = _torch_dtypes()[1] if header else {}
    expected = 0
    tensors: dict[str, Any] = {}
    for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
        dtype = to_torch.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {name!r} has an unknown dtype {entry['dtype']!r}")
        import torch

        shape = [int(d) for d in entry["shape"]]
        start, stop = (int(x) for x in entry["data_offsets"])
        numel = 1
        for dim in shape:
            numel *= dim
        size = numel * torch.empty((), dtype=dtype).element_size()
        if start != expected or stop - start != size:
            raise ValueError(f"tensor {name!r} has byte range {start}..{stop}, expected {expected}..{expected + size}")
        if numel == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(buffer, dtype=dtype, count=numel, offset=start_of_data + start).view(shape)
        expected = stop
    if start_of_data + expected != len(view):
        raise ValueError(f"{len(view) - start_of_data - expected} unexpected bytes after the last tensor")
    return tensors
