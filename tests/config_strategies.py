"""Hypothesis strategies that draw config trees for any pydantic schema, from its field types
and constraints (bounds, lengths, patterns, choices), so the property tests follow the schema
as it grows instead of a hand-kept copy of it."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import annotated_types
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr

OMIT = object()  # the field is left out, so its default applies


def _constraints(annotation: Any, metadata: list[Any]) -> tuple[Any, dict[str, Any]]:
    """The bare annotation and its bounds, lengths and pattern."""
    found: dict[str, Any] = {}
    items = list(metadata)
    while typing.get_origin(annotation) is typing.Annotated:
        args = typing.get_args(annotation)
        annotation = args[0]
        for extra in args[1:]:
            items.extend(getattr(extra, "metadata", [extra]))
    for item in items:
        for kind in (annotated_types.Gt, annotated_types.Ge, annotated_types.Lt, annotated_types.Le):
            if isinstance(item, kind):
                name = kind.__name__.lower()
                found[name] = getattr(item, name)
        if isinstance(item, annotated_types.MinLen):
            found["min_length"] = item.min_length
        if isinstance(item, annotated_types.MaxLen):
            found["max_length"] = item.max_length
        if getattr(item, "pattern", None):
            found["pattern"] = item.pattern
    return annotation, found


def value_strategy(annotation: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    annotation, bounds = _constraints(annotation, metadata or [])
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(value_strategy(arg, list(_meta_of(bounds))) for arg in args))
    if annotation is type(None):
        return st.none()
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(value_strategy(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(value_strategy(args[0]), value_strategy(args[1]), max_size=2)
    if annotation is Any:
        return st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return tree_strategy(annotation)
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds["ge"] if "ge" in bounds else (bounds["gt"] + 1 if "gt" in bounds else None)
        high = bounds["le"] if "le" in bounds else (bounds["lt"] - 1 if "lt" in bounds else None)
        return st.integers(min_value=low, max_value=high)
    if annotation is float:
        low = bounds.get("ge", bounds.get("gt"))
        high = bounds.get("le", bounds.get("lt"))
        return st.floats(
            min_value=low, max_value=high, exclude_min="gt" in bounds, exclude_max="lt" in bounds,
            allow_nan=False, allow_infinity=False,
        )
    if annotation is SecretStr:
        return st.text(max_size=12).map(SecretStr)
    if annotation is str:
        if "pattern" in bounds:
            return st.from_regex(bounds["pattern"], fullmatch=True)
        return st.text(min_size=bounds.get("min_length", 0), max_size=bounds.get("max_length", 16))
    raise NotImplementedError(f"no strategy for {annotation!r}")


def _meta_of(bounds: dict[str, Any]) -> list[Any]:
    """Bounds again as metadata, so that each member of an Optional keeps them."""
    out: list[Any] = []
    for name in ("gt", "ge", "lt", "le"):
        if name in bounds:
            out.append(getattr(annotated_types, name.capitalize())(bounds[name]))
    if "min_length" in bounds:
        out.append(annotated_types.MinLen(bounds["min_length"]))
    if "pattern" in bounds:
        out.append(type("Pattern", (), {"pattern": bounds["pattern"]})())
    return out


def tree_strategy(model: type[BaseModel]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts of a model's fields; each field drawn, or left out for its default."""
    fields = {
        name: st.one_of(st.just(OMIT), value_strategy(info.annotation, list(info.metadata)))
        for name, info in model.model_fields.items()
    }
    return st.fixed_dictionaries(fields).map(lambda drawn: {k: v for k, v in drawn.items() if v is not OMIT})
