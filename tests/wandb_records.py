"""Reading a W&B run file (``run-<id>.wandb``) back, as the test's independent check.

The file is W&B's transaction log: a 7-byte header (``:W&B``, magic, version), then
records in 32 KiB blocks, each with a 7-byte header (CRC, length, type: full, first,
middle, last) as in LevelDB's log format; a record is a ``wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    position, pieces = 7, []
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        if left < 7:
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        body = data[position + 7:position + 7 + length]
        position += 7 + length
        if kind == FULL:
            yield wandb_internal_pb2.Record.FromString(body)
        elif kind == FIRST:
            pieces = [body]
        elif kind == MIDDLE:
            pieces.append(body)
        elif kind == LAST:
            pieces.append(body)
            yield wandb_internal_pb2.Record.FromString(b"".join(pieces))


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


def read_run(path: Path) -> dict[str, Any]:
    """``{"run": record, "config": {...}, "history": [row...], "summary": {...}, "exit_code": int | None}``."""
    result: dict[str, Any] = {"run": None, "config": {}, "history": [], "summary": {}, "exit_code": None}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            result["run"] = record.run
            for item in record.run.config.update:
                result["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                result["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            result["history"].append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                result["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            result["exit_code"] = record.exit.exit_code
    return result
