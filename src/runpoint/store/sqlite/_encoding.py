"""How values are encoded in the store's JSON and numeric columns (one rule for writes and filters)."""

from __future__ import annotations

import json
import math
from typing import Any


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None
