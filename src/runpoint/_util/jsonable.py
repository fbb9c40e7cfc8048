"""Strict JSON for everything runpoint prints or serves.

JSON has no NaN or infinities, yet losses do. runpoint writes them as the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, which JavaScript's ``Number()`` and
Python's ``float()`` both read back.
"""

from __future__ import annotations

import json
import math
from array import array
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats replaced by strings and arrays turned into lists."""
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, array)):
        return [jsonable(v) for v in value]
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    return json.dumps(jsonable(value), indent=indent, allow_nan=False, default=str, ensure_ascii=False)
