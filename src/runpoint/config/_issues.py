"""Pydantic's validation errors as :class:`ConfigIssue` lines a person can act on.

``('training', 'learning_rate')`` + "Input should be greater than 0" becomes
``training.learning_rate: got -0.1, expected a value greater than 0  [configs/base.yaml:7]``.
Errors of one field from several union members merge into one line; values under
secret-looking keys are masked.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from .._util.secrets import MASK, is_secret_key
from ..errors import ConfigIssue
from ._dotted import child, is_under, is_valid_path, split_path
from ._fields import annotation_at, is_secret_type
from ._interpolate import show
from ._layers import ENV_PREFIX, SourceMap

_SECTION_TYPES = {"model_type", "model_attributes_type", "dict_type", "mapping_type", "model_class"}


def loc_to_path(loc: Iterable[Any], tree: Any) -> str:
    """A pydantic ``loc`` as a dotted path, skipping the union-member tags pydantic adds.

    The path follows the input tree: inside a mapping every name is a step (a key the input
    lacks is a missing field); past a plain value, names are pydantic's union tags.
    """
    path, node = "", tree
    for item in loc:
        if isinstance(node, dict) and isinstance(item, str):
            if item in node:
                path, node = child(path, item), node[item]
            else:  # a missing field, or a section the input does not have at all
                path, node = child(path, item), {}
        elif isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            path, node = child(path, item), node[item]
    return path


def expectation(error: dict[str, Any]) -> str:
    """Pydantic's message turned around to say what was expected."""
    kind, message = error["type"], error["msg"]
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    if kind == "assertion_error":
        return message.removeprefix("Assertion failed, ")
    if kind in _SECTION_TYPES:
        return "expected a mapping of fields"
    if kind == "missing":
        return "required, but no file, environment variable or override sets it"
    if kind == "extra_forbidden":
        return "unknown key"
    match = re.match(r"^(?:Input|Value) should be (.*)$", message, re.S)
    if match:
        rest = match.group(1)
        if rest.startswith(("greater", "less")):
            rest = "a value " + rest
        return "expected " + rest
    match = re.match(r"^String should match pattern '(.*)'$", message)
    if match:
        return f"expected text matching {match.group(1)}"
    match = re.match(r"^(?:String|List|Dictionary|Tuple|Set|Value) should (?:have )?(.*)$", message)
    if match:
        return "expected " + match.group(1)
    return message[:1].lower() + message[1:]


def _did_you_mean(given: str, expected: str) -> str:
    close = difflib.get_close_matches(given, re.findall(r"'([^']*)'", expected), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def shown_value(value: Any, path: str, schema: type[BaseModel] | None = None) -> str:
    """The bad value as an issue shows it: masked for secrets, shortened when long.

    Secret: a ``SecretStr`` value, a key on the path that looks secret (``db.password``,
    ``credentials.aws``), or a field the schema types as ``SecretStr``.
    """
    segments = split_path(path) if path and is_valid_path(path) else []
    secret = (
        isinstance(value, (SecretStr, SecretBytes))
        or any(isinstance(segment, str) and is_secret_key(segment) for segment in segments)
        or (schema is not None and bool(segments) and is_secret_type(annotation_at(schema, segments)))
    )
    if secret and value is not None:
        return repr(MASK)
    return show(value)


def validation_issues(
    error: ValidationError, tree: Any, sources: SourceMap, skip: Iterable[str], schema: type[BaseModel] | None = None
) -> list[ConfigIssue]:
    """One issue per field that failed, in pydantic's order; fields under ``skip`` are left out."""
    skipped = list(skip)
    grouped: dict[str, list[Any]] = {}
    for item in error.errors(include_url=False):
        path = loc_to_path(item["loc"], tree)
        if any(is_under(path, s) for s in skipped):
            continue
        grouped.setdefault(path, []).append(item)
    issues = []
    for path, errors in grouped.items():
        expected = list(dict.fromkeys(expectation(e) for e in errors))
        message = expected[0] if len(expected) == 1 else "expected " + ", or ".join(
            e.removeprefix("expected ") for e in expected
        )
        first = errors[0]
        section_error = isinstance(first.get("input"), dict) and first["type"] not in _SECTION_TYPES
        value = None if first["type"] == "missing" or section_error else shown_value(first.get("input"), path, schema)
        source = sources.describe(path, inside=section_error)
        if first["type"] == "missing" and path:
            variable = ENV_PREFIX + "__".join(path.replace("[", ".").replace("]", "").split(".")).upper()
            message = f"required: set it in a config file, with {variable}, or with {path}=..."
        if first["type"] in {"list_type", "tuple_type"} and source.startswith(("env ", "override ")):
            message += " (write a list as [a, b])"
        if first["type"] == "literal_error" and isinstance(first.get("input"), str):
            message += _did_you_mean(first["input"], str((first.get("ctx") or {}).get("expected", "")))
        issues.append(ConfigIssue(path, message, source, value))
    return issues
