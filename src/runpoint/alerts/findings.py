"""What a detector reports (:class:`Finding`), and which keys a detector watches (:class:`KeyMatcher`)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Literal, Sequence

Level = Literal["info", "warning", "error"]
LEVELS: tuple[Level, ...] = ("info", "warning", "error")


@dataclass(frozen=True)
class Finding:
    """One alert a detector (or ``run.alert``) raised, before the run stores it.

    Example::

        Finding(kind="spike", level="warning", title="train/loss spiked", step=120, key="train/loss")
    """

    kind: str
    level: Level
    title: str
    text: str = ""
    step: int | None = None
    key: str | None = None


class KeyMatcher:
    """Glob patterns over metric keys (case-insensitive), with each key's answer remembered.

    Example::

        watched = KeyMatcher(["*loss*"])
        watched("train/loss"), watched("train/acc")     # (True, False)
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        joined = "|".join(fnmatch.translate(p) for p in self.patterns) or r"(?!)"
        self._regex = re.compile(joined, re.IGNORECASE)
        self._known: dict[str, bool] = {}

    def __call__(self, key: str) -> bool:
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._regex.match(key) is not None
        return known


def format_number(value: float) -> str:
    return f"{value:.6g}"
