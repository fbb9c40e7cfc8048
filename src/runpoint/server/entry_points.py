"""What the Launch page can start: entry points, their config schema, defaults and presets.

The built-in entry point is the demo (``python -m runpoint demo``). Register your own in a
YAML file and pass it with ``runpoint ui --entry-points launch.yaml``::

    entry_points:
      train-cnn:
        description: ResNet-ish CNN on CIFAR-10
        command: ["{python}", "train.py", "--config", "{config}"]
        cwd: .                              # relative to this file (default: its folder)
        project: cnn                        # default project shown on the form
        defaults_file: configs/base.yaml    # or `defaults:` inline
        schema: mypkg.config:TrainConfig    # optional pydantic model; else inferred from the defaults
        presets:                            # partial configs merged over the defaults
          small: {model: {width: 32}}
          long: {training: {epochs: 300}}

Placeholders in ``command``: ``{python}`` (this interpreter), ``{config}`` (a YAML file
holding the submitted config), ``{root}``, ``{project}``, ``{name}``, ``{launch_id}``. The
process also gets ``RUNPOINT_ROOT`` (so ``rp.init`` records into the dashboard's root) and
``RUNPOINT_LAUNCH_CONFIG`` (the config file).
"""

from __future__ import annotations

import copy
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..config.normalize import deep_merge
from ..errors import ConfigError

PLACEHOLDERS = ("python", "config", "root", "project", "name", "launch_id")


@dataclass(frozen=True)
class EntryPoint:
    """A command the Launch page can start, with the config its form edits.

    Attributes:
        name: how the form lists it.
        command: argv, with placeholders (see the module docstring).
        description: one line for the form.
        defaults: the config the form starts from.
        schema: JSON schema of the config; inferred from ``defaults`` when not given.
        presets: name -> partial config merged over ``defaults``.
        cwd: working directory of the process (default: the server's).
        project: the project the form suggests.
        model: ``"module:Class"`` of a pydantic model that validates the config, if any.
        validator: a function that raises :class:`ConfigError` for a bad config (takes
            precedence over ``model``; the built-in demo uses its own config loader).
    """

    name: str
    command: tuple[str, ...]
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    schema: dict[str, Any] | None = None
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    cwd: str | None = None
    project: str = "default"
    model: str | None = None
    validator: Callable[[dict[str, Any]], Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        if self.schema is not None:
            return self.schema
        return schema_from_defaults(self.defaults, title=self.name)

    def describe(self) -> dict[str, Any]:
        """What the form needs: schema, defaults, presets merged over the defaults."""
        return {
            "name": self.name,
            "description": self.description,
            "project": self.project,
            "schema": self.json_schema(),
            "defaults": self.defaults,
            "presets": {name: deep_merge(self.defaults, values) for name, values in self.presets.items()},
            "command": list(self.command),
            "takes_name": any("{name}" in part for part in self.command),
            "takes_project": any("{project}" in part for part in self.command),
        }

    def validate(self, config: Any) -> dict[str, Any]:
        """The config to launch with; :class:`ConfigError` listing every problem otherwise."""
        if not isinstance(config, dict):
            raise ConfigError("the config must be a mapping of sections to values")
        if self.validator is not None:
            self.validator(config)
            return config
        if self.model is not None:
            return _validate_with_model(self.model, config)
        problems = validate_json(self.json_schema(), config)
        if problems:
            raise ConfigError(problems)
        return config


def demo_entry_point() -> EntryPoint:
    """``python -m runpoint demo`` with the demo's config and a few presets."""
    from ..demo.digits import DEFAULT_CONFIG, checked_demo_config

    return EntryPoint(
        name="demo",
        description="An MLP learns scikit-learn's digits on the CPU (runpoint's demo).",
        command=("{python}", "-m", "runpoint", "demo", "--root", "{root}", "--project", "{project}",
                 "--name", "{name}", "--config", "{config}"),
        defaults=copy.deepcopy(DEFAULT_CONFIG),
        schema=demo_schema(),
        validator=checked_demo_config,  # also refuses what the demo would record but ignore
        presets={
            "quick": {"training": {"epochs": 3}},
            "wide": {"model": {"hidden_sizes": [256, 128], "dropout_rate": 0.2}},
            "long": {"training": {"epochs": 60, "learning_rate": 1e-3}},
        },
        project="demo",
    )


def demo_schema() -> dict[str, Any]:
    """The part of :class:`~runpoint.ProjectConfig`'s JSON schema that the demo's form edits.

    Descriptions, bounds and enums come from the typed config; only the fields the demo
    reads are shown, so the form stays short.
    """
    from ..config.schema import ProjectConfig
    from ..demo.digits import DEFAULT_CONFIG

    full = ProjectConfig.model_json_schema()
    definitions = full.get("$defs", {})
    properties: dict[str, Any] = {}
    for section, values in DEFAULT_CONFIG.items():
        reference = full["properties"][section]
        target = reference.get("$ref") or next(
            (option["$ref"] for option in reference.get("allOf", []) if "$ref" in option), None
        )
        definition = definitions[target.rsplit("/", 1)[-1]] if target else reference
        properties[section] = {
            "type": "object",
            "title": section.capitalize(),
            "description": definition.get("description", ""),
            "properties": {key: definition["properties"][key] for key in values if key in definition.get("properties", {})},
            "additionalProperties": False,
        }
    _demo_bounds(properties)
    return {"type": "object", "title": "demo", "properties": properties, "$defs": definitions}


def _demo_bounds(properties: dict[str, Any]) -> None:
    """The demo's own limits (:func:`runpoint.demo.digits.check_limits`) in its form's schema."""
    from ..demo import digits as demo

    def cap(field: dict[str, Any], maximum: int) -> None:
        for option in [field, *field.get("anyOf", [])]:
            if option.get("type") == "integer":
                option["maximum"] = maximum

    training = properties.get("training", {}).get("properties", {})
    for key, maximum in (("epochs", demo.MAX_EPOCHS), ("max_steps", demo.MAX_STEPS)):
        if key in training:
            cap(training[key], maximum)
    hidden = properties.get("model", {}).get("properties", {}).get("hidden_sizes")
    if hidden is not None:
        hidden["maxItems"] = demo.MAX_HIDDEN_LAYERS
        cap(hidden.get("items", {}), demo.MAX_HIDDEN_SIZE)



def schema_from_defaults(value: Any, title: str | None = None) -> dict[str, Any]:
    """A JSON schema that accepts values shaped like ``value`` (types inferred, no extra keys)."""
    schema: dict[str, Any]
    if isinstance(value, Mapping):
        schema = {
            "type": "object",
            "properties": {str(k): schema_from_defaults(v, str(k)) for k, v in value.items()},
            "required": [str(k) for k in value],
            "additionalProperties": False,
        }
    elif isinstance(value, bool):
        schema = {"type": "boolean"}
    elif isinstance(value, int):
        schema = {"type": "integer"}
    elif isinstance(value, float):
        schema = {"type": "number"}
    elif isinstance(value, str):
        schema = {"type": "string"}
    elif isinstance(value, (list, tuple)):
        schema = {"type": "array", "items": schema_from_defaults(value[0]) if value else {}}
    else:
        schema = {}
    if title:
        schema["title"] = title
    if not isinstance(value, Mapping) and value is not None:
        schema["default"] = list(value) if isinstance(value, tuple) else value
    return schema


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "boolean": (bool,),
    "integer": (int,), "number": (int, float), "null": (type(None),),
}


def _type_ok(value: Any, expected: str) -> bool:
    if expected in {"integer", "number"} and isinstance(value, bool):
        return False
    if expected == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, _JSON_TYPES.get(expected, (object,)))


def validate_json(schema: Mapping[str, Any], value: Any, path: str = "") -> list[str]:
    """Problems of ``value`` against the subset of JSON schema that forms use; [] when valid.

    Checks type, properties, required, additionalProperties, items, enum and the numeric
    bounds. Each problem names the dotted field path.
    """
    where = path or "the config"
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_type_ok(value, t) for t in allowed):
            return [f"{where}: expected {' or '.join(allowed)}, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        for bound, ok, words in (
            ("minimum", lambda b: value >= b, "at least"), ("maximum", lambda b: value <= b, "at most"),
            ("exclusiveMinimum", lambda b: value > b, "more than"), ("exclusiveMaximum", lambda b: value < b, "less than"),
        ):
            if bound in schema and not ok(schema[bound]):
                problems.append(f"{where}: must be {words} {schema[bound]}, got {value!r}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{path + '.' if path else ''}{key}: missing")
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if key in properties:
                problems.extend(validate_json(properties[key], item, child))
            elif schema.get("additionalProperties") is False:
                problems.append(f"{child}: unknown field (known: {', '.join(properties) or 'none'})")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problems.extend(validate_json(schema["items"], item, f"{path}[{index}]"))
    return problems


def _import_model(spec: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load the schema {spec!r}: {exc}") from None


def _validate_with_model(spec: str, config: dict[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    model = _import_model(spec)
    try:
        validated = model.model_validate(config)
    except ValidationError as exc:
        raise ConfigError(
            [f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()]
        ) from None
    return validated.model_dump(mode="json")


def load_entry_points(path: str | os.PathLike[str]) -> list[EntryPoint]:
    """The entry points a YAML file registers (format in the module docstring)."""
    from .._util.yaml import read_yaml_file

    file = Path(path).expanduser().resolve()
    try:
        data = read_yaml_file(file) or {}
    except ConfigError as exc:
        raise ConfigError(f"cannot read entry points: {exc}", file) from None
    section = data.get("entry_points") if isinstance(data, dict) else None
    if not isinstance(section, dict) or not section:
        raise ConfigError("expected a mapping `entry_points: {name: {command: [...], ...}}`", file)
    found = []
    for name, spec in section.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"entry_points.{name}: expected a mapping", file)
        command = spec.get("command")
        if isinstance(command, str):
            command = command.split()
        if not command or not all(isinstance(part, str) for part in command):
            raise ConfigError(f"entry_points.{name}.command: expected a list of strings", file)
        defaults = spec.get("defaults") or {}
        if "defaults_file" in spec:
            try:
                defaults = read_yaml_file(file.parent / spec["defaults_file"]) or {}
            except ConfigError as exc:
                raise ConfigError(f"entry_points.{name}.defaults_file: {exc}", file) from None
        if not isinstance(defaults, dict):
            raise ConfigError(f"entry_points.{name}.defaults: expected a mapping", file)
        presets = spec.get("presets") or {}
        if not isinstance(presets, dict) or not all(isinstance(p, dict) for p in presets.values()):
            raise ConfigError(f"entry_points.{name}.presets: expected a mapping of names to partial configs", file)
        model = spec.get("schema")
        schema = None
        if model is not None:
            schema = _import_model(str(model)).model_json_schema()
        found.append(EntryPoint(
            name=str(name), command=tuple(command), description=str(spec.get("description", "")),
            defaults=defaults, schema=schema, presets=presets, project=str(spec.get("project", "default")),
            cwd=str((file.parent / spec.get("cwd", ".")).resolve()), model=str(model) if model else None,
        ))
    return found
