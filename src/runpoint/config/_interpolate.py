"""Interpolation: ``${training.batch_size}`` and ``${env:DATA_DIR}`` inside config values.

- A value that is exactly one reference takes the referenced value with its type
  (``eval_batch_size: ${training.batch_size}`` is an int); a reference inside longer text
  is written into it (``${env:DATA_DIR}/digits``).
- ``${env:NAME,default}`` falls back to ``default`` when ``NAME`` is not set.
- References see the merged config (defaults included) and resolve recursively; a cycle
  or a reference to a key that does not exist is an error naming the chain.
- ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import copy
import difflib
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ._dotted import MISSING, child, get_path, is_valid_path, leaves, split_path

ENV_SCHEME = "env:"


class InterpolationError(Exception):
    """One reference could not be resolved; ``cycle`` marks an error shared by every member of a cycle."""

    def __init__(self, message: str, cycle: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.cycle = cycle


@dataclass(frozen=True)
class _Ref:
    expression: str


def pieces(text: str) -> list[str | _Ref]:
    """Split ``text`` into literal text and references."""
    out: list[str | _Ref] = []
    buffer: list[str] = []
    index = 0
    while index < len(text):
        if text.startswith("$${", index):
            buffer.append("${")
            index += 3
        elif text.startswith("${", index):
            end = text.find("}", index + 2)
            if end < 0:
                raise InterpolationError("'${' without a closing '}' (write $${ for a literal ${)")
            expression = text[index + 2:end]
            if "${" in expression:
                raise InterpolationError(f"nested references are not supported: ${{{expression}}}")
            if buffer:
                out.append("".join(buffer))
                buffer = []
            out.append(_Ref(expression.strip()))
            index = end + 1
        else:
            buffer.append(text[index])
            index += 1
    if buffer:
        out.append("".join(buffer))
    return out


def escape(text: str) -> str:
    """``text`` written so that interpolation gives it back unchanged."""
    return text.replace("${", "$${")


def _as_text(value: Any, expression: str) -> str:
    if isinstance(value, (dict, list)):
        kind = "mapping" if isinstance(value, dict) else "list"
        raise InterpolationError(f"${{{expression}}} is a {kind}: only a whole value can refer to it, not text around it")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class Interpolator:
    """Resolves the references of ``tree``, looking up keys it lacks in ``defaults``.

    ``typed(path, text)`` types the text of an environment variable for the field at ``path``.
    """

    tree: dict[str, Any]
    defaults: Mapping[str, Any]
    environ: Mapping[str, str]
    typed: Callable[[str, str], Any]
    _done: dict[str, Any] = field(default_factory=dict)

    def resolve_all(self) -> tuple[dict[str, str], dict[str, InterpolationError]]:
        """Replace every reference in ``tree`` in place; returns the original text of each
        resolved leaf and the error of each leaf that failed (those are left out of the tree)."""
        originals: dict[str, str] = {}
        failures: dict[str, InterpolationError] = {}
        for path, value in list(leaves(self.tree)):
            if not (isinstance(value, str) and "${" in value):
                continue
            try:
                self._replace(path, self._value(path, value, ()))
            except InterpolationError as exc:
                failures[path] = exc
                continue
            if any(isinstance(part, _Ref) for part in pieces(value)):
                originals[path] = value
        return originals, failures

    def _replace(self, path: str, value: Any) -> None:
        segments = split_path(path)
        parent = get_path(self.tree, segments[:-1])
        parent[segments[-1]] = value

    def _lookup(self, path: str) -> Any:
        segments = split_path(path)
        found = get_path(self.tree, segments)
        return found if found is not MISSING else get_path(self.defaults, segments)

    def _value(self, path: str, value: Any, chain: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: self._value(child(path, k), v, chain) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(child(path, i), v, chain) for i, v in enumerate(value)]
        if not (isinstance(value, str) and "${" in value):
            return value
        parts = pieces(value)
        if len(parts) == 1 and isinstance(parts[0], _Ref):
            return self._reference(path, parts[0].expression, chain, whole=True)
        return "".join(
            part if isinstance(part, str) else _as_text(self._reference(path, part.expression, chain, whole=False), part.expression)
            for part in parts
        )

    def _reference(self, at: str, expression: str, chain: tuple[str, ...], *, whole: bool) -> Any:
        if expression.startswith(ENV_SCHEME):
            name, comma, default = expression[len(ENV_SCHEME):].partition(",")
            name = name.strip()
            if not name:
                raise InterpolationError("${env:} needs a variable name, e.g. ${env:DATA_DIR}")
            if name in self.environ:
                text = self.environ[name]
            elif comma:
                text = default.strip()
            else:
                raise InterpolationError(
                    f"environment variable {name} is not set (referenced as ${{{expression}}}); set it, "
                    f"or give a default: ${{env:{name},<default>}}"
                )
            return self.typed(at, text) if whole else text
        if ":" in expression.split(".")[0]:
            raise InterpolationError(f"unknown resolver in ${{{expression}}}: only ${{env:NAME}} and ${{section.field}} exist")
        if not is_valid_path(expression):
            raise InterpolationError(f"${{{expression}}} is not a field path like training.batch_size")
        here = chain or (at,)
        if expression in here:
            cycle = here[here.index(expression):] + (expression,)
            raise InterpolationError("interpolation cycle: " + " -> ".join(cycle), cycle=_canonical(cycle))
        if expression in self._done:
            return copy.deepcopy(self._done[expression])
        raw = self._lookup(expression)
        if raw is MISSING:
            raise InterpolationError(f"${{{expression}}} refers to a key that does not exist{self._hint(expression)}")
        try:
            resolved = self._value(expression, raw, here + (expression,))
        except InterpolationError as exc:
            if exc.cycle:
                raise
            raise InterpolationError(f"in ${{{expression}}}: {exc}") from None
        self._done[expression] = resolved
        return copy.deepcopy(resolved)

    def _hint(self, expression: str) -> str:
        known = [p for p, _ in leaves(self.defaults) if p] + [p for p, _ in leaves(self.tree) if p]
        close = difflib.get_close_matches(expression, sorted(set(known)), n=1, cutoff=0.6)
        return f"; did you mean ${{{close[0]}}}?" if close else ""


def _canonical(cycle: tuple[str, ...]) -> tuple[str, ...]:
    """The same cycle reported from any member reads the same: start at its smallest path."""
    members = cycle[:-1]
    start = members.index(min(members))
    rotated = members[start:] + members[:start]
    return rotated + (rotated[0],)


def show(value: Any) -> str:
    """A value as an issue shows it."""
    if isinstance(value, str):
        return repr(value)
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."
