"""Reading ages such as ``30d``, ``12h``, ``90m``, ``2w`` or ``1d12h`` as seconds.

Example::

    parse_duration("30d")      # 2592000.0
    parse_duration("1w2d")     # 777600.0
"""

from __future__ import annotations

import re

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[smhdw])+$")
EXAMPLES = "e.g. 30d, 12h, 90m, 2w or 1d12h (units: s, m, h, d, w)"


def parse_duration(text: object) -> float:
    """Seconds in ``text``: one or more ``<number><unit>`` parts; ``ValueError`` saying what is wrong."""
    if isinstance(text, bool) or not isinstance(text, str):
        raise ValueError(f"{text!r} is not a duration: give a string, {EXAMPLES}")
    compact = text.strip().lower().replace(" ", "")
    if not compact:
        raise ValueError(f"an empty duration: give one, {EXAMPLES}")
    if compact.isdigit():
        raise ValueError(f"{text!r} has no unit: write {compact}d for days or {compact}h for hours "
                         "(units: s, m, h, d, w)")
    if not _WHOLE.match(compact):
        raise ValueError(f"{text!r} is not a duration: {EXAMPLES}")
    return float(sum(float(number) * UNIT_SECONDS[unit] for number, unit in _PART.findall(compact)))


def format_duration(seconds: float) -> str:
    """The largest whole unit: ``2592000`` -> ``30d``, ``5400`` -> ``90m``."""
    for unit in ("w", "d", "h", "m"):
        if seconds >= UNIT_SECONDS[unit] and seconds % UNIT_SECONDS[unit] == 0:
            return f"{int(seconds // UNIT_SECONDS[unit])}{unit}"
    return f"{seconds:g}s"


def format_age(seconds: float) -> str:
    """Whole units, rounded down: ``95`` -> ``1m``, ``200000`` -> ``2d``."""
    for unit in ("d", "h", "m"):
        if seconds >= UNIT_SECONDS[unit]:
            return f"{int(seconds // UNIT_SECONDS[unit])}{unit}"
    return f"{int(max(0.0, seconds))}s"
