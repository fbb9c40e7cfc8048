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
import math
import struct
from typing import Any, Callable, NamedTuple

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


class _Entry(NamedTuple):
    name: str
    dtype: Any
    shape: tuple[int, ...]
    start: int
    stop: int


def _non_negative_ints(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(type(item) is int and item >= 0 for item in value):
        raise ValueError(f"{what} must be a list of integers >= 0, got {value!r}")
    return value


def _parse_header(raw: Any) -> tuple[list[_Entry], dict[str, str], int]:
    """The tensors a header describes, in file order, its metadata and the data's length.

    Everything is checked before any tensor is allocated: a damaged header (a huge or
    negative shape, overlapping or missing bytes, an unknown dtype) raises ValueError.
    """
    try:
        header = json.loads(bytes(raw))
    except RecursionError:  # a crafted header: nested deeper than the parser goes
        raise ValueError("the header is nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise ValueError("the header's __metadata__ is not a JSON object")
    to_torch = _torch_dtypes()[1] if header else {}
    entries = []
    for name, entry in header.items():
        if not isinstance(entry, dict):
            raise ValueError(f"tensor {name!r} is described by {entry!r}, not an object")
        code = entry.get("dtype")
        dtype = to_torch.get(code) if isinstance(code, str) else None
        if dtype is None:
            raise ValueError(f"tensor {name!r} has an unknown dtype {code!r}")
        shape = _non_negative_ints(entry.get("shape"), f"the shape of tensor {name!r}")
        offsets = _non_negative_ints(entry.get("data_offsets"), f"the data_offsets of tensor {name!r}")
        if len(offsets) != 2:
            raise ValueError(f"the data_offsets of tensor {name!r} must be [start, stop], got {offsets!r}")
        entries.append(_Entry(name, dtype, tuple(shape), offsets[0], offsets[1]))
    entries.sort(key=lambda entry: (entry.start, entry.stop))
    expected = 0
    for entry in entries:
        size = math.prod(entry.shape) * entry.dtype.itemsize
        if entry.start != expected or entry.stop - entry.start != size:
            raise ValueError(f"tensor {entry.name!r} of shape {list(entry.shape)} has byte range "
                             f"{entry.start}..{entry.stop}, expected {expected}..{expected + size}")
        expected = entry.stop
    return entries, {str(k): str(v) for k, v in metadata.items()}, expected


def check_header(stream: Any, size: int) -> None:
    """Read the header at the start of ``stream`` and check it is a JSON object that fits
    ``size`` bytes; ValueError if not. Needs no torch (``ckpt verify`` uses it)."""
    prefix = _read_some(stream, 8)
    if len(prefix) < 8:
        raise ValueError("the file is too short for a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise ValueError(f"header of {length} bytes does not fit the file")
    raw = _read_some(stream, length)
    try:
        header = json.loads(raw)
    except RecursionError:
        raise ValueError("the header is nested too deeply") from None
    if not isinstance(header, dict):
        raise ValueError("the header is not a JSON object")


def _read_some(stream: Any, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = stream.read(left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read(stream: Any, size: int | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a whole safetensors stream into new CPU tensors; returns (tensors, metadata).

    ``size`` is the stream's length when known (the manifest says it): a header that
    describes another length is refused before any tensor is allocated.
    """
    prefix = bytearray(8)
    _read_exactly(stream, memoryview(prefix))
    (length,) = struct.unpack("<Q", prefix)
    if length > min(MAX_HEADER_BYTES, size - 8 if size is not None else MAX_HEADER_BYTES):
        raise ValueError(f"header of {length} bytes does not fit the file")
    raw = bytearray(length)
    _read_exactly(stream, memoryview(raw))
    entries, metadata, data_bytes = _parse_header(raw)
    if size is not None and 8 + length + data_bytes != size:
        raise ValueError(f"the header describes {8 + length + data_bytes} bytes, the file has {size}")
    import torch

    tensors: dict[str, Any] = {}
    for entry in entries:
        try:
            tensor = torch.empty(entry.shape, dtype=entry.dtype)
        except RuntimeError as exc:
            if size is not None:  # the header matches the file: a real shortage of memory
                raise MemoryError(f"tensor {entry.name!r} of shape {list(entry.shape)} cannot be allocated: {exc}") from None
            raise ValueError(f"tensor {entry.name!r} of shape {list(entry.shape)} cannot be allocated: {exc}") from None
        if entry.stop > entry.start:
            _read_exactly(stream, byte_view(tensor))
        tensors[entry.name] = tensor
    if stream.read(1):
        raise ValueError("unexpected bytes after the last tensor")
    return tensors, metadata


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
    entries, _, data_bytes = _parse_header(view[8:8 + length])
    start_of_data = 8 + length
    if start_of_data + data_bytes != len(view):
        raise ValueError(f"{len(view) - start_of_data - data_bytes} unexpected bytes after the last tensor"
                         if start_of_data + data_bytes < len(view) else
                         f"the header describes {start_of_data + data_bytes} bytes, the file has {len(view)}")
    import torch

    tensors: dict[str, Any] = {}
    for entry in entries:
        if entry.stop == entry.start:
            tensors[entry.name] = torch.empty(entry.shape, dtype=entry.dtype)
        else:
            count = (entry.stop - entry.start) // entry.dtype.itemsize
            flat = torch.frombuffer(buffer, dtype=entry.dtype, count=count, offset=start_of_data + entry.start)
            tensors[entry.name] = flat.view(entry.shape)
    return tensors
