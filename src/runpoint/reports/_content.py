"""The content of a report, independent of its output format: sections of blocks
(key-value lists, tables, figures, preformatted text, notes) and how a value is shown.

:mod:`.report` builds a :class:`Report`; :mod:`.render` turns it into HTML and Markdown.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass
class KeyValues:
    rows: list[tuple[str, str]]


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Figure:
    name: str  # file name stem for the Markdown version
    png: bytes
    caption: str
    logged: bool = False  # an image the run logged (small ones are shown enlarged), not a chart


@dataclass
class Pre:
    text: str


@dataclass
class Note:
    text: str


Block = KeyValues | Table | Figure | Pre | Note


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)


@dataclass
class Report:
    title: str
    subtitle: str
    status: str
    sections: list[Section]


def fmt(value: Any) -> str:
    """A value as a report shows it: floats to 6 significant digits, JSON for containers."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return f"{value:.6g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)
