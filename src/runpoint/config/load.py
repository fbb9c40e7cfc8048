"""``rp.load_config``: a typed config from defaults, files, the environment and overrides.

Resolution order, later wins::

    schema defaults < base file < profile file < RUNPOINT__SECTION__FIELD env vars < overrides

then experiment presets fill what is still unset, ``${...}`` references resolve, and the
schema validates the result. Every problem is reported at once, as a
:class:`~runpoint.ConfigError` whose lines name the field, the file and line (or the
environment variable, or the override) that set it, the bad value and what was expected.

Example::

    import runpoint as rp

    cfg = rp.load_config("configs/base.yaml", profile="dev", overrides=["training.learning_rate=3e-4"])
    resolved = rp.config.resolve_config("configs/base.yaml", profile="dev")
    resolved.sources["training.learning_rate"]     # 'configs/profiles/dev.yaml:4'
"""

from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Iterable, Mapping, TypeVar, cast

from pydantic import BaseModel, SecretBytes, SecretStr, ValidationError

from .._util.fs import write_atomic
from .._util.secrets import mask_secrets
from .._util.yaml import dump_yaml
from ..errors import ConfigError, ConfigIssue, InvalidArgumentError
from ._dotted import MISSING, child, delete_path, get_path, leaves, split_path
from ._fields import (
    annotation_at,
    defaults_tree,
    model_class,
    null_sections_to_empty,
    parse_text,
    unknown_keys,
)
from ._interpolate import Interpolator, escape
from ._issues import shown_value, validation_issues
from ._layers import (
    Layer,
    Source,
    SourceMap,
    env_layer,
    file_layer,
    merge_layer,
    override_layer,
)
from .files import SUFFIXES, ConfigFile, display_path, find_profile, read_config_file
from .normalize import to_plain

M = TypeVar("M", bound=BaseModel)

PROFILE_ENV = "RUNPOINT_PROFILE"
BASE_NAMES = ("base.yaml", "base.yml", "base.json", "config.yaml", "config.yml", "config.json")


@dataclass(frozen=True)
class ResolvedConfig(Generic[M]):
    """A loaded config and where each of its values came from.

    ``sources`` maps every dotted leaf path (``training.learning_rate``) to its origin:
    ``configs/base.yaml:7``, ``env RUNPOINT__TRAINING__LEARNING_RATE``,
    ``override training.learning_rate=3e-4``, ``preset 'full'`` or ``default``.
    """

    config: M
    sources: Mapping[str, str]
    files: tuple[Path, ...]
    profile: str | None


def load_config(
    path: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    overrides: Iterable[str] = (),
    schema: type[M] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    defaults: BaseModel | Mapping[str, Any] | None = None,
) -> M:
    """Load, merge and validate a config; :class:`~runpoint.ConfigError` lists every problem.

    Args:
        path: a YAML or JSON file, or a directory holding ``base.yaml``; None uses defaults only.
        profile: ``dev``, ``prod``, ``test`` or any name of a file in ``profiles/`` beside
            ``path`` (or a path to a file); deep-merged over the base. Default: ``$RUNPOINT_PROFILE``.
        overrides: ``"section.field=value"`` strings, typed by the schema
            (``"model.hidden_sizes=[256,128]"``); they win over everything else.
        schema: any pydantic model; default :class:`~runpoint.ProjectConfig`.
        env: the environment to read ``RUNPOINT__SECTION__FIELD`` variables and
            ``${env:NAME}`` from; default ``os.environ``.
        defaults: a script's own config (a model or a partial mapping) that sits between
            the schema's defaults and the base file; the schema defaults to its class.

    Example::

        cfg = rp.load_config("configs/base.yaml", profile="prod", overrides=["training.seed=1"])
    """
    return resolve_config(path, profile, overrides, schema, env=env, defaults=defaults).config


def resolve_config(
    path: str | os.PathLike[str] | None = None,
    profile: str | None = None,
    overrides: Iterable[str] = (),
    schema: type[M] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    defaults: BaseModel | Mapping[str, Any] | None = None,
) -> ResolvedConfig[M]:
    """Like :func:`load_config`, and also say where every value came from."""
    if schema is None and isinstance(defaults, BaseModel):
        schema = type(defaults)  # type: ignore[assignment]
    model = schema_or_default(schema)
    environ = os.environ if env is None else env
    if profile is None and path is not None:  # without a base file there is nothing for $RUNPOINT_PROFILE to sit beside
        profile = environ.get(PROFILE_ENV) or None
    problems: list[ConfigIssue] = []
    files: list[ConfigFile] = []
    base = find_base_file(path) if path is not None else None
    label = display_path(base) if base is not None else None
    for where, kind in ((base, "file"), (profile, "profile")):
        if where is None:
            continue
        try:
            file = read_config_file(where if kind == "file" else find_profile(base, str(where)))
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        files.append(file)
    layers: list[Layer] = [Layer(_explicit_tree(defaults))] if defaults is not None else []
    layers += [file_layer(f, "file" if i == 0 and base is not None else "profile") for i, f in enumerate(files)]
    layers.append(env_layer(model, environ, problems))
    layers.append(override_layer(model, overrides, problems))
    if problems:
        raise ConfigError(problems, label)
    config, sources, originals = _build(model, layers, environ, label)
    return ResolvedConfig(
        config=cast(M, config),
        sources=_leaf_sources(config, sources, originals),
        files=tuple(f.path for f in files),
        profile=profile,
    )


def with_overrides(config: M, overrides: Iterable[str]) -> M:
    """A copy of ``config`` with ``"section.field=value"`` overrides applied and validated.

    Fields the config set explicitly stay set; presets still fill what nobody set.

    Example::

        fast = rp.config.with_overrides(cfg, ["training.epochs=1", "experiment.preset=basic"])
    """
    model = type(config)
    problems: list[ConfigIssue] = []
    layer = override_layer(model, overrides, problems)
    if problems:
        raise ConfigError(problems)
    return cast(M, _build(model, [Layer(_explicit_tree(config)), layer], os.environ, None)[0])


def _explicit_tree(config: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """What a config sets itself: a model's explicitly set fields (as literal text), or a mapping as is."""
    if isinstance(config, BaseModel):
        return cast(dict[str, Any], _escape_references(to_plain(config.model_dump(exclude_unset=True))))
    if not isinstance(config, Mapping):
        raise InvalidArgumentError("defaults", f"expected a pydantic model or a mapping, got {type(config).__qualname__}")
    return copy.deepcopy(dict(config))


def _build(
    model: type[BaseModel], layers: list[Layer], environ: Mapping[str, str], label: str | None
) -> tuple[BaseModel, SourceMap, dict[str, str]]:
    """Merge, fill presets, check keys, interpolate and validate; every problem at once."""
    problems: list[ConfigIssue] = []
    tree: dict[str, Any] = {}
    sources = SourceMap()
    for layer in layers:
        null_sections_to_empty(model, layer.tree)
        merge_layer(tree, sources, layer)
    defaults = defaults_tree(model)
    _add_default_references(tree, defaults)
    _expand_presets(model, tree, "", sources)

    skip: list[str] = []
    for unknown in unknown_keys(model, tree):
        hint = f"did you mean {unknown.suggestion!r}?" if unknown.suggestion else _known_keys(model, unknown.path)
        problems.append(ConfigIssue(unknown.path, f"unknown key; {hint}", sources.describe(unknown.path, inside=True)))
        skip.append(unknown.path)
    for unknown_path in skip:
        delete_path(tree, split_path(unknown_path))

    def typed(at: str, text: str) -> Any:
        return parse_text(text, annotation_at(model, split_path(at)))

    originals, failures = Interpolator(tree, defaults, environ, typed).resolve_all()
    seen_cycles: set[tuple[str, ...]] = set()
    for failed_path, failure in failures.items():
        written = get_path(tree, split_path(failed_path))
        skip.append(failed_path)
        delete_path(tree, split_path(failed_path))
        if failure.cycle:
            if failure.cycle in seen_cycles:
                continue  # one line per cycle, not one per member
            seen_cycles.add(failure.cycle)
        whole = isinstance(written, str) and written.startswith("${") and written.endswith("}")
        shown = None if whole else shown_value(written, failed_path, model)
        problems.append(ConfigIssue(failed_path, str(failure), sources.describe(failed_path), shown))

    try:
        config = model.model_validate(tree)
    except ValidationError as exc:
        problems.extend(validation_issues(exc, tree, sources, skip, model))
    else:
        _unset_preset_fields(config, sources.paths_from("preset"))
    if problems:
        file_order = [s.name for layer in layers for s in list(layer.sources.values())[:1] if s.kind in ("file", "profile")]
        raise ConfigError(_in_file_order(problems, file_order), label)
    return config, sources, originals


def _in_file_order(problems: list[ConfigIssue], file_order: list[str]) -> list[ConfigIssue]:
    """Problems in files first (base, then profile; by line within a file), the rest after in their order."""
    files = {name: index for index, name in enumerate(file_order)}
    keyed = []
    for index, problem in enumerate(problems):
        match = re.match(r"^(.*):(\d+)$", problem.source)
        if match:
            order = files.setdefault(match.group(1), len(files))
            keyed.append(((0, order, int(match.group(2)), index), problem))
        else:
            keyed.append(((1, 0, 0, index), problem))
    return [problem for _, problem in sorted(keyed, key=lambda item: item[0])]


def schema_or_default(schema: Any) -> type[BaseModel]:
    """``schema`` checked to be a pydantic model class; :class:`ProjectConfig` for None."""
    if schema is None:
        from .schema import ProjectConfig

        return ProjectConfig
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise InvalidArgumentError("schema", f"expected a pydantic model class, got {schema!r}")
    return schema


def find_base_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or the base file inside the directory ``path``."""
    base = Path(path).expanduser()
    if base.is_dir():
        for name in BASE_NAMES:
            if (base / name).is_file():
                return base / name
        raise ConfigError([ConfigIssue("", f"the directory holds none of {', '.join(BASE_NAMES)}", display_path(base))])
    return base


def _add_default_references(tree: dict[str, Any], defaults: Mapping[str, Any]) -> None:
    """Defaults that are themselves references (``"${env:DATA_DIR}"``) resolve like written ones."""
    for path, value in leaves(defaults):
        if isinstance(value, str) and "${" in value and get_path(tree, split_path(path)) is MISSING:
            segments = [str(s) for s in split_path(path)]
            node = tree
            for segment in segments[:-1]:
                node = node.setdefault(segment, {})
                if not isinstance(node, dict):
                    break
            else:
                node[segments[-1]] = value


def _expand_presets(model: type[BaseModel], tree: dict[str, Any], path: str, sources: SourceMap) -> None:
    """Fill a section's unset fields from its named preset (``experiment.preset: full``)."""
    presets: Mapping[str, Mapping[str, Any]] | None = getattr(model, "__presets__", None)
    name = tree.get("preset")
    if presets and isinstance(name, str) and name in presets:
        for key, value in presets[name].items():
            if key not in tree:
                tree[key] = copy.deepcopy(value)
                sources.set(child(path, key), Source("preset", name))
    for field_name, info in model.model_fields.items():
        nested = model_class(info.annotation)
        if nested is not None and isinstance(tree.get(field_name), dict):
            _expand_presets(nested, tree[field_name], child(path, field_name), sources)


def _unset_preset_fields(config: BaseModel, paths: list[str]) -> None:
    """Fields a preset filled count as unset, as when the section is built in code (see ExperimentConfig)."""
    for path in paths:
        *parents, name = path.split(".")
        section: Any = config
        for parent in parents:
            section = getattr(section, parent, None)
        if isinstance(section, BaseModel):
            section.__pydantic_fields_set__.discard(name)


def _known_keys(model: type[BaseModel], path: str) -> str:
    parent = split_path(path)[:-1]
    annotation = annotation_at(model, parent) if parent else model
    section = model_class(annotation)
    if section is None:
        return "this section takes no such key"
    names = list(section.model_fields)
    listed = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return f"known keys here: {listed}"


def _leaf_sources(config: BaseModel, sources: SourceMap, originals: Mapping[str, str]) -> dict[str, str]:
    described: dict[str, str] = {}
    for path, _ in leaves(to_plain(config)):
        if not path or "[" in path:
            continue
        source = sources.of(path)
        text = str(source) if source else "default"
        if path in originals:
            text += f" ({originals[path]})"
        described[path] = text
    return described


def dump_config(
    config: BaseModel | Mapping[str, Any],
    path: str | os.PathLike[str] | None = None,
    *,
    reveal_secrets: bool = False,
) -> str:
    """The config as YAML (JSON when ``path`` ends in ``.json``); written to ``path`` when given.

    Secrets are masked unless ``reveal_secrets``; text that looks like a reference is
    escaped, so loading the file gives the same config back.

    Example::

        rp.config.dump_config(cfg, "resolved.yaml")
        assert rp.load_config("resolved.yaml") == cfg   # secrets aside
    """
    plain = to_plain(config)
    tree = _reveal(plain) if reveal_secrets else mask_secrets(plain)
    tree = _escape_references(tree)
    as_json = path is not None and Path(path).suffix.lower() == ".json"
    text = json.dumps(tree, indent=2, ensure_ascii=False) + "\n" if as_json else dump_yaml(tree)
    if path is not None:
        if Path(path).suffix.lower() not in SUFFIXES:
            raise InvalidArgumentError("path", f"{path}: use a .yaml, .yml or .json file name")
        write_atomic(Path(path), text)
    return text


def _reveal(value: Any) -> Any:
    if isinstance(value, (SecretStr, SecretBytes)):
        secret = value.get_secret_value()
        return secret.decode("utf-8", "replace") if isinstance(secret, bytes) else secret
    if isinstance(value, dict):
        return {k: _reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reveal(v) for v in value]
    return value


def _escape_references(value: Any) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {k: _escape_references(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_references(v) for v in value]
    return value

