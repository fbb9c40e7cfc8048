"""Documentation generated from a schema: the commented ``base.yaml`` of ``runpoint config
init``, and the field list a script prints for ``--help``. Both come from the field
descriptions and constraints, so they cannot drift from the schema.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any, Iterator, Literal

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .._util.yaml import dump_yaml
from ._dotted import child
from ._fields import model_class, unwrap
from .normalize import _plain
from .presets import PRESET_DESCRIPTIONS

_BOUNDS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="),
           (annotated_types.Lt, "lt", "<"), (annotated_types.Le, "le", "<="))


def type_text(annotation: Any) -> str:
    """A short readable type: ``int``, ``float | null``, ``list[int]``, ``relu|gelu``."""
    inner, optional = unwrap(annotation)
    text = _bare_type(inner)
    return f"{text} | null" if optional else text


def _bare_type(annotation: Any) -> str:
    annotation = unwrap(annotation)[0]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return "|".join(str(arg) for arg in args)
    if origin in (list, tuple, set, frozenset) and args:
        return f"list[{_bare_type(args[0])}]"
    if origin is dict and len(args) == 2:
        return f"dict[{_bare_type(args[0])}, {_bare_type(args[1])}]"
    if origin is not None and args:
        return " | ".join(_bare_type(arg) for arg in args)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "|".join(str(member.value) for member in annotation)
    if annotation in (type(None), None):
        return "null"
    return getattr(annotation, "__name__", str(annotation)).replace("SecretStr", "secret")


def _metadata(info: FieldInfo) -> Iterator[Any]:
    yield from info.metadata
    stack = [info.annotation]
    while stack:
        annotation = stack.pop()
        if typing.get_origin(annotation) is typing.Annotated:
            for extra in typing.get_args(annotation)[1:]:
                yield from getattr(extra, "metadata", [extra])
            stack.append(typing.get_args(annotation)[0])
        elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
            stack.extend(typing.get_args(annotation))


def constraint_text(info: FieldInfo) -> str:
    """``> 0``, ``>= 0, < 1``: the bounds of a field, empty when it has none."""
    parts = []
    for item in _metadata(info):
        for kind, attribute, symbol in _BOUNDS:
            if isinstance(item, kind):
                parts.append(f"{symbol} {getattr(item, attribute)}")
    return ", ".join(dict.fromkeys(parts))


def default_of(info: FieldInfo) -> Any:
    if info.default is not PydanticUndefined:
        return _plain(info.default)
    if info.default_factory is not None and not getattr(info, "default_factory_takes_data", False):
        return _plain(info.default_factory())  # type: ignore[call-arg]
    return PydanticUndefined


def field_rows(schema: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(path, type, default, description) of every leaf field, sections walked into."""
    rows = []
    for name, info in schema.model_fields.items():
        path = child(prefix, name)
        nested = model_class(info.annotation)
        if nested is not None and not unwrap(info.annotation)[1]:
            rows.extend(field_rows(nested, path))
            continue
        default = default_of(info)
        shown = "required" if default is PydanticUndefined else dump_yaml(default).strip().removesuffix("...").strip()
        bounds = constraint_text(info)
        rows.append((path, type_text(info.annotation) + (f" ({bounds})" if bounds else ""), shown, info.description or ""))
    return rows


def commented_yaml(schema: type[BaseModel], header: str) -> str:
    """A YAML file of every field at its default, each with its description as a comment."""
    lines = [f"# {line}".rstrip() for line in header.strip().splitlines()]
    lines.append("")
    _model_lines(schema, 0, lines)
    return "\n".join(lines).rstrip() + "\n"


def _model_lines(model: type[BaseModel], depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    presets = getattr(model, "__presets__", None) or {}
    governed = {key for values in presets.values() for key in values}
    if presets:
        lines.append(f"{indent}# presets (set `preset:`; a field you set yourself wins over the preset):")
        for name in presets:
            lines.append(f"{indent}#   {name}: {PRESET_DESCRIPTIONS.get(name, '')}".rstrip(": "))
        lines.append(f"{indent}# The fields a preset fills are commented out below, so that a preset can fill them.")
    for name, info in model.model_fields.items():
        nested = model_class(info.annotation)
        if nested is not None and not unwrap(info.annotation)[1]:
            if depth == 0 and lines and lines[-1] != "":
                lines.append("")
            description = (info.description or nested.__doc__ or "").strip().splitlines()
            if description:
                lines.append(f"{indent}# {description[0]}")
            lines.append(f"{indent}{name}:")
            _model_lines(nested, depth + 1, lines)
            continue
        note = info.description or ""
        bounds = constraint_text(info)
        inner = unwrap(info.annotation)[0]
        if typing.get_origin(inner) is Literal:
            note += f" One of: {', '.join(str(a) for a in typing.get_args(inner))}."
        if bounds:
            note += f" ({bounds})"
        if note:
            lines.append(f"{indent}# {note.strip()}")
        default = default_of(info)
        if default is PydanticUndefined:
            lines.append(f"{indent}{name}:  # required")
            continue
        if type(default).__name__ in {"SecretStr", "SecretBytes"}:
            default = None
        body = dump_yaml({name: default}).rstrip("\n").splitlines()
        comment = "# " if name in governed else ""
        lines.extend(f"{indent}{comment}{line}" for line in body)
