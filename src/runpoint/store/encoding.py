"""How values are encoded in a store's JSON and numeric columns: one rule for every backend's writes and filters."""

from __future__ import annotations

import json
import math
from typing import Any


def to_json(value: Any) -> str:
    """``value`` as the JSON text a store keeps (keys sorted; anything else by ``str``)."""
    return json.dumps(value, sort_keys=True, default=str)


def as_number(value: Any) -> float | None:
    """The value as a float for numeric comparisons (bools as 1 and 0), or None if it is not a finite number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None
