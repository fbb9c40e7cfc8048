"""What the loader asks of a pydantic schema: field types by path, defaults, unknown keys.

Works with any ``BaseModel``: nested models, ``Optional`` models, lists and dicts of
models. Values given as text (environment variables, overrides) are typed here: a field
that holds text keeps the text as is, anything else is read as a YAML value, so
``[256, 128]`` becomes a list and ``3e-4`` a float.
"""

from __future__ import annotations

import difflib
import enum
import os
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic_core import PydanticUndefined

from .._util.yaml import ConfigLoader
from ._dotted import Segment, child
from .normalize import _plain

_NULLS = {"null", "Null", "NULL", "~"}


def _strip_annotated(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_args(annotation: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return typing.get_args(annotation)
    return None


def unwrap(annotation: Any) -> tuple[Any, bool]:
    """``Annotated[Optional[X], ...]`` -> ``(X, True)``; a union of several types stays whole."""
    annotation = _strip_annotated(annotation)
    args = _union_args(annotation)
    if args is not None and type(None) in args:
        rest = [arg for arg in args if arg is not type(None)]
        if len(rest) == 1:
            return _strip_annotated(rest[0]), True
        return Union[tuple(rest)], True  # type: ignore[return-value]
    return annotation, False


def model_class(annotation: Any) -> type[BaseModel] | None:
    """The model an annotation holds (``X``, ``X | None``), if it holds exactly one."""
    inner, _ = unwrap(annotation)
    return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None


def _item_annotation(annotation: Any, segment: Segment) -> Any:
    """The annotation of ``segment`` inside a value annotated ``annotation`` (None: unknown)."""
    model = model_class(annotation)
    if model is not None:
        field = find_field(model, str(segment))
        return model.model_fields[field].annotation if field else None
    inner, _ = unwrap(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def find_field(model: type[BaseModel], key: str, *, ignore_case: bool = False) -> str | None:
    """The field name ``key`` refers to (by name or alias), or None."""
    fields = model.model_fields
    if key in fields:
        return key
    for name, info in fields.items():
        if info.alias == key or (ignore_case and (name.lower() == key.lower() or (info.alias or "").lower() == key.lower())):
            return name
    return None


def annotation_at(schema: type[BaseModel], segments: list[Segment]) -> Any:
    """The annotation of the field at ``segments`` (None when the path leaves the schema)."""
    annotation: Any = schema
    for segment in segments:
        annotation = _item_annotation(annotation, segment)
        if annotation is None:
            return None
    return annotation


def schema_key(schema: type[BaseModel], segments: list[str]) -> list[str]:
    """Environment-variable segments (any case) spelled as the schema spells its fields."""
    spelled: list[str] = []
    annotation: Any = schema
    for segment in segments:
        model = model_class(annotation) if annotation is not None else None
        name = find_field(model, segment, ignore_case=True) if model else None
        spelled.append(name or segment.lower())
        annotation = _item_annotation(annotation, name or segment.lower()) if annotation is not None else None
    return spelled


def accepts_text(annotation: Any) -> bool:
    """True when a value of this type is written as plain text (str, paths, secrets, string choices)."""
    inner, _ = unwrap(annotation)
    if inner in (str, SecretStr, SecretBytes, bytes) or (isinstance(inner, type) and issubclass(inner, (str, os.PathLike))):
        return True
    if typing.get_origin(inner) is Literal:
        return all(isinstance(arg, str) for arg in typing.get_args(inner))
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return all(isinstance(member.value, str) for member in inner)
    return False


def is_secret_type(annotation: Any) -> bool:
    """True for ``SecretStr``, ``SecretBytes`` and their Optional forms."""
    return annotation is not None and unwrap(annotation)[0] in (SecretStr, SecretBytes)


def parse_text(text: str, annotation: Any) -> Any:
    """A value given as text, typed by the field it is for."""
    if annotation is not None and accepts_text(annotation):
        if unwrap(annotation)[1] and text.strip() in _NULLS:
            return None
        return text
    try:
        return yaml.load(text, Loader=ConfigLoader)
    except yaml.YAMLError:
        return text


def defaults_tree(model: type[BaseModel]) -> dict[str, Any]:
    """The schema's default values as a plain tree; required fields without defaults are absent."""
    tree: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if info.default is not PydanticUndefined:
            value = info.default
        elif info.default_factory is not None and not getattr(info, "default_factory_takes_data", False):
            value = info.default_factory()  # type: ignore[call-arg]
        elif (nested := model_class(info.annotation)) is not None:
            value = defaults_tree(nested)
        else:
            continue
        tree[name] = _plain(value)
    return tree


def null_sections_to_empty(schema: type[BaseModel], tree: dict[str, Any]) -> None:
    """``training:`` with every line under it commented out reads as null: treat it as empty."""
    for name, info in schema.model_fields.items():
        if name not in tree:
            continue
        inner, optional = unwrap(info.annotation)
        nested = model_class(info.annotation)
        if nested is None:
            continue
        if tree[name] is None and not optional:
            tree[name] = {}
        if isinstance(tree[name], dict):
            null_sections_to_empty(nested, tree[name])


@dataclass(frozen=True)
class UnknownKey:
    path: str
    key: str
    suggestion: str | None


def all_field_paths(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted field path of a schema, sections walked into."""
    paths: list[str] = []
    for name, info in schema.model_fields.items():
        path = child(prefix, name)
        nested = model_class(info.annotation)
        if nested is not None:
            paths.extend(all_field_paths(nested, path))
        else:
            paths.append(path)
    return paths


def unknown_keys(schema: type[BaseModel], tree: Any) -> list[UnknownKey]:
    """Keys of ``tree`` the schema has no field for, each with a "did you mean" when one is close."""
    found: list[UnknownKey] = []
    _find_unknown(schema, tree, "", found, all_field_paths(schema))
    return found


def _find_unknown(model: type[BaseModel], tree: Any, path: str, found: list[UnknownKey], everywhere: list[str]) -> None:
    if not isinstance(tree, dict) or model.model_config.get("extra") == "allow":
        return
    names = list(model.model_fields)
    for key, value in tree.items():
        field = find_field(model, str(key))
        here = child(path, str(key))
        if field is None:
            found.append(UnknownKey(here, str(key), _suggest(str(key), names, path, everywhere)))
            continue
        _descend(model.model_fields[field].annotation, value, here, found, everywhere)


def _descend(annotation: Any, value: Any, path: str, found: list[UnknownKey], everywhere: list[str]) -> None:
    nested = model_class(annotation)
    if nested is not None:
        _find_unknown(nested, value, path, found, everywhere)
        return
    inner, _ = unwrap(annotation)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is list and args and isinstance(value, list):
        for index, item in enumerate(value):
            _descend(args[0], item, child(path, index), found, everywhere)
    elif origin is dict and len(args) == 2 and isinstance(value, dict):
        for key, item in value.items():
            _descend(args[1], item, child(path, str(key)), found, everywhere)


def _suggest(key: str, names: list[str], path: str, everywhere: list[str]) -> str | None:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return child(path, close[0])
    elsewhere = [p for p in everywhere if p.rsplit(".", 1)[-1] == key]
    if not elsewhere:
        leaf_names = {p.rsplit(".", 1)[-1]: p for p in everywhere}
        near = difflib.get_close_matches(key, list(leaf_names), n=1, cutoff=0.75)
        elsewhere = [leaf_names[near[0]]] if near else []
    return elsewhere[0] if elsewhere else None
