"""YAML the way configs need it: exact scalars, a line number for every key, no duplicate keys.

PyYAML follows YAML 1.1, where ``no``, ``off`` and ``y`` are booleans, ``3e-4`` is a
string and ``0123`` an octal number. Configs are read with YAML 1.2's core rules instead
(``true``/``false`` only, ``3e-4`` is a float, ``0123`` stays text for the schema to judge),
and written so that any YAML reader gets the same values back: a string that either rule
set would misread is quoted.

Example::

    tree, lines = parse_yaml("training:\\n  learning_rate: 3e-4\\n", "base.yaml")
    tree == {"training": {"learning_rate": 0.0003}}; lines["training.learning_rate"] == 2

Every YAML runpoint reads goes through a bounded loader: a file over
:data:`MAX_CONFIG_BYTES`, nesting deeper than :data:`MAX_CONFIG_DEPTH`, more than
:data:`MAX_CONFIG_NODES` values once aliases are expanded ("billion laughs") and an alias
inside the node it names are refused with a :class:`ConfigError` naming the limit, before
anything walks the tree.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, ConfigIssue

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_MERGE_TAG = "tag:yaml.org,2002:merge"

_BOOL_12 = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_12 = re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$")
_FLOAT_12 = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
        |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
    re.X,
)


MAX_CONFIG_BYTES = 512 * 1024
"""Largest config file read (512 KiB): configs hold settings, not data."""
MAX_CONFIG_DEPTH = 64
"""Deepest nesting of mappings and lists, counted through aliases."""
MAX_CONFIG_NODES = 20_000
"""Most keys and values in one document, every alias counted as a full copy of what it names.

The pure-Python parser reads some 10 000 values a second on a slow machine: this bounds a
read to a second or two."""


class YamlLimitError(yaml.YAMLError):
    """A YAML document over one of the limits above; ``line`` is 1-based, when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(message)


class _Bounded:
    """Composes at most :data:`MAX_CONFIG_DEPTH` levels and checks the alias-expanded tree.

    PyYAML composes recursively (2 000 levels end in RecursionError) and shares one node
    per anchor, so a few hundred bytes of aliases can stand for billions of values; the
    check counts them on the shared graph, in time linear in the file.
    """

    _depth = 0
    _nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        if self._depth >= MAX_CONFIG_DEPTH or self._nodes > MAX_CONFIG_NODES:
            line = self.peek_event().start_mark.line + 1  # type: ignore[attr-defined]
            if self._depth >= MAX_CONFIG_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_CONFIG_DEPTH} levels (the limit)", line)
            raise YamlLimitError(f"more than {MAX_CONFIG_NODES:,} keys and values (the limit)", line)
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()  # type: ignore[misc]
        check_expanded(node)
        return node


def check_expanded(root: yaml.Node) -> None:
    """Raise :class:`YamlLimitError` for a recursive alias, or a tree over the node or depth limit."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, depth) with aliases expanded
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            open_nodes.discard(key)
            counted = [sizes[id(child)] for child in children]
            size = 1 + sum(count for count, _ in counted)
            depth = 1 + max((level for _, level in counted), default=0)
            if size > MAX_CONFIG_NODES:
                raise YamlLimitError(
                    f"more than {MAX_CONFIG_NODES:,} keys and values once its aliases (*name) are expanded "
                    "(the limit)", node.start_mark.line + 1)
            if depth > MAX_CONFIG_DEPTH:
                raise YamlLimitError(
                    f"nested deeper than {MAX_CONFIG_DEPTH} levels once its aliases (*name) are expanded (the limit)",
                    node.start_mark.line + 1)
            sizes[key] = (size, depth)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlLimitError("an alias (*name) refers to the mapping or list it is inside of", node.start_mark.line + 1)
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class BoundedSafeLoader(_Bounded, yaml.SafeLoader):
    """``yaml.SafeLoader`` (YAML 1.1 scalars) within the limits: for files runpoint wrote."""


class ConfigLoader(_Bounded, yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans, integers and floats, within the limits."""


class ConfigDumper(yaml.SafeDumper):
    """SafeDumper that quotes strings a YAML 1.1 or 1.2 reader would take for something else."""


ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in {_BOOL_TAG, _INT_TAG, _FLOAT_TAG}]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ConfigLoader.add_implicit_resolver(_BOOL_TAG, _BOOL_12, list("tTfF"))
ConfigLoader.add_implicit_resolver(_INT_TAG, _INT_12, list("-+0123456789"))
ConfigLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))
ConfigDumper.yaml_implicit_resolvers = {
    first: list(resolvers) for first, resolvers in yaml.SafeDumper.yaml_implicit_resolvers.items()
}
ConfigDumper.add_implicit_resolver(_FLOAT_TAG, _FLOAT_12, list("-+0123456789."))


def _represent_list(dumper: yaml.SafeDumper, value: list[Any]) -> yaml.Node:
    flow = all(item is None or isinstance(item, (bool, int, float, str)) for item in value) and len(value) <= 16
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flow or None)


ConfigDumper.add_representer(list, _represent_list)

_LINE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # PyYAML writes NEL and the Unicode line separators into plain or single-quoted
    # scalars, where a reader folds them into spaces; double quotes escape them.
    style = '"' if any(brk in value for brk in _LINE_BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


ConfigDumper.add_representer(str, _represent_str)


def malformed(problem: yaml.YAMLError, name: str) -> ConfigIssue:
    """A :class:`ConfigIssue` for a YAML syntax error, with the file and line."""
    mark = getattr(problem, "problem_mark", None) or getattr(problem, "context_mark", None)
    what = getattr(problem, "problem", None) or str(problem)
    context = getattr(problem, "context", None)
    context_mark = getattr(problem, "context_mark", None)
    if context:
        started = f" started on line {context_mark.line + 1}" if context_mark is not None and mark is not None \
            and context_mark.line != mark.line else ""
        what = f"{what} ({context}{started})"
    if mark is None:
        return ConfigIssue("", f"malformed YAML: {what}", name)
    return ConfigIssue("", f"malformed YAML at column {mark.column + 1}: {what}", f"{name}:{mark.line + 1}")


def _limit_issue(exc: YamlLimitError, name: str) -> ConfigIssue:
    return ConfigIssue("", f"refused: {exc}", f"{name}:{exc.line}" if exc.line is not None else name)


def read_limited(path: str | os.PathLike[str], label: str | None = None, encoding: str = "utf-8") -> str:
    """The text of a config file of at most :data:`MAX_CONFIG_BYTES`; :class:`ConfigError` otherwise.

    Reads no more than one byte past the limit, so ``/dev/zero`` or a 50 MB file costs nothing.
    """
    file = Path(path)
    label = label if label is not None else str(file)
    try:
        with open(file, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read it: {exc}", label)], label) from None
    if len(data) > MAX_CONFIG_BYTES:
        issue = ConfigIssue("", f"refused: larger than {MAX_CONFIG_BYTES:,} bytes (the limit for a config file); "
                                "keep data out of configs and point to it with a path", label)
        raise ConfigError([issue], label)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue("", f"cannot read it: {exc}", label)], label) from None


def read_yaml_file(path: str | os.PathLike[str], label: str | None = None) -> Any:
    """The data of a YAML file runpoint wrote (a run's ``config.yaml``), within the limits.

    Read with ``yaml.safe_load``'s rules, so files written by any runpoint version read back
    as they were. Raises :class:`ConfigError` when the file is missing, too large, malformed
    or over a limit.
    """
    label = label if label is not None else str(path)
    return read_yaml_text(read_limited(path, label), label)


def read_yaml_text(text: str, label: str) -> Any:
    """The data of YAML text runpoint wrote, within the limits (see :func:`read_yaml_file`)."""
    loader = BoundedSafeLoader(text)
    try:
        return loader.get_single_data()
    except YamlLimitError as exc:
        raise ConfigError([_limit_issue(exc, label)], label) from None
    except yaml.YAMLError as exc:
        raise ConfigError([malformed(exc, label)], label) from None
    finally:
        loader.dispose()


def parse_yaml(text: str, name: str) -> tuple[Any, dict[str, int]]:
    """The data of one YAML document and the line (1-based) of each dotted key path.

    Raises :class:`ConfigError` naming ``name`` and the line for malformed YAML and for a
    key given twice in one mapping.
    """
    loader = None
    try:
        loader = ConfigLoader(text)  # rejects characters YAML does not allow, with their position
        node = loader.get_single_node()
        lines: dict[str, int] = {}
        duplicates: list[ConfigIssue] = []
        if node is not None:
            _record_lines(node, "", lines, duplicates, name, overwrite=True, active=set())
        if duplicates:
            raise ConfigError(duplicates, name)
        data = loader.construct_document(node) if node is not None else None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        issue = ConfigIssue("", f"malformed YAML: the character {exc.character!r} is not allowed in YAML "
                                "(write it escaped inside double quotes)", f"{name}:{line}")
        raise ConfigError([issue], name) from None
    except YamlLimitError as exc:
        raise ConfigError([_limit_issue(exc, name)], name) from None
    except yaml.YAMLError as exc:
        raise ConfigError([malformed(exc, name)], name) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def line_map(text: str) -> dict[str, int]:
    """Lines of each key path, or ``{}`` when ``text`` does not parse as YAML (JSON mostly does)."""
    try:
        return parse_yaml(text, "")[1]
    except ConfigError:
        return {}


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else f"<{node.tag.rsplit(':', 1)[-1]}>"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _record_lines(
    node: yaml.Node, path: str, lines: dict[str, int], duplicates: list[ConfigIssue], name: str,
    *, overwrite: bool, active: set[int],
) -> None:
    if id(node) in active:  # a recursive alias: its lines are recorded already
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        merges: list[yaml.Node] = []
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.extend(value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node])
                continue
            key = _key_text(key_node)
            child = _join(path, key)
            line = key_node.start_mark.line + 1
            if overwrite and key in seen:
                duplicates.append(ConfigIssue(
                    child, f"given twice in one mapping (lines {seen[key]} and {line}); keep one", f"{name}:{line}"
                ))
            seen[key] = line
            if overwrite or child not in lines:
                lines[child] = line
            _record_lines(value_node, child, lines, duplicates, name, overwrite=overwrite, active=active)
        for merged in merges:  # `<<: *defaults` supplies keys the mapping does not set itself
            _record_lines(merged, path, lines, duplicates, name, overwrite=False, active=active)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = f"{path}[{index}]"
            if overwrite or child not in lines:
                lines[child] = item.start_mark.line + 1
            _record_lines(item, child, lines, duplicates, name, overwrite=overwrite, active=active)
    active.discard(id(node))


def dump_yaml(tree: Any) -> str:
    """YAML text of a plain tree, keys in their order, readable by any YAML reader."""
    return yaml.dump(tree, Dumper=ConfigDumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)


def run_config_text(config: Any, header: str = "") -> str:
    """A run's ``config.yaml``: ``header`` (comment lines) and the config as :func:`dump_yaml` writes it.

    Strings such as ``"1e3"`` or ``"yes"`` come out quoted, so ``rp.load_config`` and
    ``yaml.safe_load`` both read back exactly what the run had.
    """
    return header + (dump_yaml(config) if config else "{}\n")
