"""Dotted paths into nested config trees: ``training.checkpoint.keep_last``, ``model.hidden_sizes[1]``."""

from __future__ import annotations

import re
from typing import Any, Iterator, Mapping

Segment = str | int

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_VALID = re.compile(r"^[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*|\[\d+\])*$")


def is_valid_path(text: str) -> bool:
    """True for ``a.b_c.d`` and ``a.b[0]``: names of letters, digits, ``_`` and ``-``."""
    return bool(_VALID.match(text))


def split_path(text: str) -> list[Segment]:
    """``"a.b[1].c"`` -> ``["a", "b", 1, "c"]``."""
    return [name if name else int(index) for name, index in _SEGMENT.findall(text)]


def join_path(segments: list[Segment] | tuple[Segment, ...]) -> str:
    """``["a", "b", 1, "c"]`` -> ``"a.b[1].c"``."""
    text = ""
    for segment in segments:
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text = f"{text}.{segment}" if text else str(segment)
    return text


def child(path: str, key: Segment) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


_MISSING = object()


def get_path(tree: Any, segments: list[Segment]) -> Any:
    """The value at ``segments``, or :data:`MISSING`."""
    node = tree
    for segment in segments:
        if isinstance(segment, int) and isinstance(node, list) and -len(node) <= segment < len(node):
            node = node[segment]
        elif isinstance(segment, str) and isinstance(node, Mapping) and segment in node:
            node = node[segment]
        else:
            return _MISSING
    return node


MISSING = _MISSING


def set_path(tree: dict[str, Any], segments: list[str], value: Any) -> None:
    """Set ``value`` at ``segments``, creating (or replacing non-dict) parents as mappings."""
    node = tree
    for segment in segments[:-1]:
        nxt = node.get(segment)
        if not isinstance(nxt, dict):
            nxt = node[segment] = {}
        node = nxt
    node[segments[-1]] = value


def delete_path(tree: dict[str, Any], segments: list[Segment]) -> None:
    parent = get_path(tree, segments[:-1])
    last = segments[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]


def is_under(path: str, ancestor: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies inside it."""
    return path == ancestor or path.startswith(ancestor + ".") or path.startswith(ancestor + "[")


def leaves(tree: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) of a tree, lists included as values and walked into."""
    if isinstance(tree, Mapping) and (tree or not path):
        for key, value in tree.items():
            yield from leaves(value, child(path, str(key)))
        return
    yield path, tree
    if isinstance(tree, list):
        for index, item in enumerate(tree):
            yield from leaves(item, child(path, index))
