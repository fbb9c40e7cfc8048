"""The layers of a config and where each value came from.

Resolution order, later wins: schema defaults < base file < profile file < environment
variables (``RUNPOINT__TRAINING__LEARNING_RATE=3e-4``) < overrides
(``training.learning_rate=3e-4``). Mappings merge key by key; any other value (a list,
a number, null) replaces what was there. Every leaf remembers its :class:`Source`, so
errors and ``runpoint config show --sources`` can say which file and line set it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Mapping

from pydantic import BaseModel

from .._util.secrets import MASK, is_secret_key
from ..errors import ConfigIssue
from ._dotted import (
    Segment,
    child,
    is_under,
    is_valid_path,
    leaves,
    set_path,
    split_path,
)
from ._fields import annotation_at, is_secret_type, parse_text, schema_key
from .files import ConfigFile

ENV_PREFIX = "RUNPOINT__"
ENV_SEPARATOR = "__"

Kind = Literal["default", "preset", "file", "profile", "env", "override"]
PRIORITY: dict[str, int] = {"default": 0, "preset": 1, "file": 2, "profile": 3, "env": 4, "override": 5}


@dataclass(frozen=True)
class Source:
    """Where a value was set: ``configs/base.yaml:7``, ``env RUNPOINT__X``, ``override x=1``..."""

    kind: Kind
    name: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind in ("file", "profile"):
            return f"{self.name}:{self.line}" if self.line else self.name
        if self.kind == "env":
            return f"env {self.name}"
        if self.kind == "override":
            return f"override {self.name}"
        if self.kind == "preset":
            return f"preset {self.name!r}"
        return "default"


@dataclass
class Layer:
    """One layer's tree and the source of each of its leaves."""

    tree: dict[str, Any]
    sources: dict[str, Source] = field(default_factory=dict)


class SourceMap:
    """Dotted leaf path -> :class:`Source` of the merged config."""

    def __init__(self) -> None:
        self._by_path: dict[str, Source] = {}

    def drop(self, path: str) -> None:
        for key in [k for k in self._by_path if is_under(k, path)]:
            del self._by_path[key]

    def set(self, path: str, source: Source) -> None:
        self._by_path[path] = source

    def of(self, path: str) -> Source | None:
        """The source of ``path``, or of the list or value it lies in."""
        probe = path
        while probe:
            if probe in self._by_path:
                return self._by_path[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return None

    def under(self, path: str) -> list[Source]:
        """Distinct sources of ``path`` and everything inside it, most important first."""
        found = {s for k, s in self._by_path.items() if is_under(k, path)}
        return sorted(found, key=lambda s: (-PRIORITY[s.kind], s.name, s.line or 0))

    def paths_from(self, kind: Kind) -> list[str]:
        """Every path whose value came from a source of this kind."""
        return [path for path, source in self._by_path.items() if source.kind == kind]

    def describe(self, path: str, *, inside: bool = False) -> str:
        """Text for an issue: the source of ``path`` (or, with ``inside``, of what lies in it)."""
        if inside:
            found = self.under(path)
            if found:
                return ", ".join(str(s) for s in found[:2])
        source = self.of(path)
        return str(source) if source else ""


def file_layer(file: ConfigFile, kind: Kind) -> Layer:
    """A file's tree; each leaf's source is its line, or the line of the key it lies under."""
    sources: dict[str, Source] = {}
    label = file.label
    for path, _ in leaves(file.tree):
        if not path:
            continue
        sources[path] = Source(kind, label, _nearest_line(file.lines, path))
    return Layer(file.tree, sources)


def _nearest_line(lines: Mapping[str, int], path: str) -> int | None:
    probe = path
    while probe:
        if probe in lines:
            return lines[probe]
        cut = max(probe.rfind("."), probe.rfind("["))
        probe = probe[:cut] if cut > 0 else ""
    return None


def _value_layer(items: Iterable[tuple[list[str], Any, Source]]) -> Layer:
    layer = Layer({})
    for segments, value, source in items:
        set_path(layer.tree, segments, value)
        path = ".".join(segments)
        layer.sources = {k: s for k, s in layer.sources.items() if not is_under(k, path)}
        for leaf, _ in leaves(value, path):
            layer.sources[leaf] = source
    return layer


def env_layer(schema: type[BaseModel], environ: Mapping[str, str], issues: list[ConfigIssue]) -> Layer:
    """``RUNPOINT__TRAINING__LEARNING_RATE=3e-4`` -> ``{"training": {"learning_rate": 3e-4}}``."""
    items = []
    for name in sorted(environ):
        if not name.upper().startswith(ENV_PREFIX):
            continue
        raw = name[len(ENV_PREFIX):].split(ENV_SEPARATOR)
        if not raw or any(not part or part != part.strip("_") for part in raw):
            issues.append(ConfigIssue(
                "", "cannot read a field path from this name: separate sections and fields with a double "
                "underscore, e.g. RUNPOINT__TRAINING__LEARNING_RATE", f"env {name}",
            ))
            continue
        segments = schema_key(schema, raw)
        annotation = annotation_at(schema, list(segments))
        items.append((segments, parse_text(environ[name], annotation), Source("env", name)))
    return _value_layer(items)


def override_layer(schema: type[BaseModel], overrides: Iterable[str], issues: list[ConfigIssue]) -> Layer:
    """``["training.learning_rate=3e-4", "model.hidden_sizes=[256,128]"]`` as a layer."""
    items = []
    if isinstance(overrides, str):
        overrides = [overrides]
    for text in overrides:
        if not isinstance(text, str):
            issues.append(ConfigIssue("", f"an override must be a 'key=value' string, got {text!r}", "override"))
            continue
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            issues.append(ConfigIssue(
                "", "an override looks like section.field=value, e.g. training.learning_rate=3e-4",
                f"override {text}",
            ))
            continue
        if not is_valid_path(key) or "[" in key:
            issues.append(ConfigIssue(
                key, "cannot read this field path: use dotted names, and set a list whole "
                "(model.hidden_sizes=[256,128])", f"override {text}",
            ))
            continue
        segments: list[Segment] = split_path(key)
        annotation = annotation_at(schema, segments)
        shown = f"{key}={MASK}" if is_secret_key(key) or is_secret_type(annotation) else text.strip()
        items.append(([str(s) for s in segments], parse_text(value, annotation), Source("override", shown)))
    return _value_layer(items)


def merge_layer(tree: dict[str, Any], sources: SourceMap, layer: Layer) -> None:
    """Merge ``layer`` into ``tree`` (mappings key by key; anything else replaces)."""
    _merge(tree, layer.tree, "", sources)
    for path, source in layer.sources.items():
        sources.set(path, source)


def _merge(target: dict[str, Any], incoming: Mapping[str, Any], path: str, sources: SourceMap) -> None:
    for key, value in incoming.items():
        here = child(path, str(key))
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value, here, sources)
        else:
            sources.drop(here)
            target[key] = copy.deepcopy(value)
