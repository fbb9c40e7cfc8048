"""Tables that stay readable in narrow terminals and pipes: ids whole, headers told apart."""

from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

_BREAK = re.compile(r"(?<=[._/-])")


class Header:
    """A column heading that breaks after ``_``, ``.``, ``/`` or ``-`` when its column is narrow.

    ``learning_rate`` over a column of 6-character numbers prints as ``learning_`` / ``rate``
    instead of making the column 13 wide or being cut to ``learn…``.
    """

    def __init__(self, text: str, style: str = "bold") -> None:
        self.text = text
        self.style = style
        self.pieces = [piece for piece in _BREAK.split(text) if piece]

    def _lines(self, width: int) -> Iterator[str]:
        line = ""
        for piece in self.pieces:
            if line and len(line) + len(piece) > width:
                yield line
                line = ""
            line += piece
        if line:
            yield line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        return Measurement(max(len(piece) for piece in self.pieces), len(self.text))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        text = Text("\n".join(self._lines(options.max_width)), style=self.style)
        text.overflow = "fold"  # a piece longer than the column is folded, never cut
        yield text


def short_headers(keys: Iterable[str]) -> dict[str, str]:
    """Each dotted key's shortest tail of ``.``-parts that no other key ends with.

    ``params.training.learning_rate`` and ``params.model.dropout`` become ``learning_rate``
    and ``dropout``; ``params.a.lr`` and ``params.b.lr`` stay apart as ``a.lr`` and ``b.lr``.
    """
    keys = list(dict.fromkeys(keys))
    parts = {key: key.split(".") for key in keys}
    short: dict[str, str] = {}
    for key in keys:
        for size in range(1, len(parts[key]) + 1):
            tail = parts[key][-size:]
            if not any(other != key and parts[other][-size:] == tail for other in keys):
                short[key] = ".".join(tail)
                break
        else:  # a key that is the tail of another (a.b and b): only the whole key is unambiguous
            short[key] = key
    return short


def natural_width(console: Console, table: Table) -> int:
    """How wide ``table`` is with nothing folded or cut."""
    return table.__rich_measure__(console, console.options.update(width=10_000)).maximum


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` so that no id or value is cut, in the terminal's width when it can be.

    Columns made with ``no_wrap=True`` or a :class:`Header` keep their cells whole: when
    space runs short, the other columns wrap between words and the headers break first; a table that
    still does not fit comes out wider than the terminal (its lines wrap there) rather
    than showing ``2p5f…``.
    """
    wide = console.options.update(width=10_000)
    for column in table.columns:
        whole = column.no_wrap or isinstance(column.header, Header)
        # the others may wrap between words, never inside one (rich would fold them to nothing)
        cells = [getattr(Measurement.get(console, wide, cell), "maximum" if whole else "minimum") for cell in column.cells]
        cells.append(Measurement.get(console, wide, column.header).minimum)
        column.min_width = max([column.min_width or 0, *cells])
    # too wide even so: drawn at its minimum width (rich would squeeze a wrapping column to nothing),
    # and the terminal wraps the lines; nothing is cut
    minimum = table.__rich_measure__(console, wide).minimum
    if minimum <= console.width:
        console.print(table, crop=False)
        return
    previous = console._width  # None: the terminal's; print() would clamp a wider width= to it
    console.width = minimum
    try:
        console.print(table, crop=False)
    finally:
        console._width = previous


def value_column(table: Table, heading: str, **options: Any) -> None:
    """A column of values kept whole under a :class:`Header` that breaks when space is short."""
    table.add_column(Header(heading), overflow="fold", **options)
