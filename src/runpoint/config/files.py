"""Reading config files (YAML or JSON) and finding profile files beside a base file.

A profile is a file in ``profiles/`` next to the base file (``configs/profiles/dev.yaml``
for ``configs/base.yaml``), named without its extension, or a path to any file.
"""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._util.yaml import MAX_CONFIG_DEPTH, line_map, parse_yaml, read_limited
from ..errors import ConfigError, ConfigIssue

SUFFIXES = (".yaml", ".yml", ".json")
PROFILE_DIR = "profiles"


@dataclass(frozen=True)
class ConfigFile:
    """One file's contribution: its tree and the line of each dotted key."""

    path: Path
    tree: dict[str, Any]
    lines: dict[str, int]

    @property
    def label(self) -> str:
        return display_path(self.path)


def display_path(path: Path) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return os.path.relpath(path) if path.is_absolute() and path.resolve().is_relative_to(Path.cwd()) else str(path)
    except (OSError, ValueError):
        return str(path)


def read_config_file(path: str | os.PathLike[str]) -> ConfigFile:
    """Parse a YAML or JSON config file; :class:`ConfigError` with file and line when it cannot."""
    file = Path(path)
    label = display_path(file)
    if not file.exists():
        raise ConfigError([ConfigIssue("", "file not found", label)], label)
    if file.is_dir():
        raise ConfigError([ConfigIssue("", "is a directory; give a YAML or JSON file", label)], label)
    text = read_limited(file, label, encoding="utf-8-sig")
    if file.suffix.lower() == ".json":
        data, lines = _parse_json(text, label), line_map(text)
    else:
        data, lines = parse_yaml(text, label)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue("", f"the top level must be a mapping of sections, not a {_kind(data)}", label)], label
        )
    return ConfigFile(file, data, lines)


def _kind(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), type(value).__name__)


def _parse_json(text: str, label: str) -> Any:
    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ConfigError([ConfigIssue(key, "given twice in one object; keep one", label)], label)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates) if text.strip() else None
    except json.JSONDecodeError as exc:
        issue = ConfigIssue("", f"malformed JSON at column {exc.colno}: {exc.msg}", f"{label}:{exc.lineno}")
        raise ConfigError([issue], label) from None
    except RecursionError:
        data = None
        too_deep = True
    else:
        too_deep = _depth(data) > MAX_CONFIG_DEPTH
    if too_deep:
        issue = ConfigIssue("", f"refused: nested deeper than {MAX_CONFIG_DEPTH} levels (the limit)", label)
        raise ConfigError([issue], label)
    return data


def _depth(data: Any) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, level = stack.pop()
        deepest = max(deepest, level)
        if level <= MAX_CONFIG_DEPTH:
            children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
            stack.extend((child, level + 1) for child in children)
    return deepest


def find_profile(base: Path | None, profile: str) -> Path:
    """The file of ``profile``: a path to a file, or a name in ``profiles/`` beside ``base``."""
    candidate = Path(profile).expanduser()
    if candidate.suffix.lower() in SUFFIXES or os.sep in profile or "/" in profile:
        if candidate.is_file():
            return candidate
        raise ConfigError([ConfigIssue("", "profile file not found", display_path(candidate))], profile)
    if base is None:
        raise ConfigError([ConfigIssue("", f"profile {profile!r} needs a base config file to sit beside; "
                                           "give a path, or a profile file path")])
    directory = base.parent / PROFILE_DIR
    for suffix in SUFFIXES:
        path = directory / f"{profile}{suffix}"
        if path.is_file():
            return path
    available = available_profiles(base)
    close = difflib.get_close_matches(profile, available, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listed = ", ".join(available) if available else "none"
    raise ConfigError([ConfigIssue(
        "", f"no profile {profile!r}: {hint}profiles in {display_path(directory)}: {listed}", display_path(base)
    )], display_path(base))


def available_profiles(base: Path) -> list[str]:
    """Names of the profile files beside ``base``, sorted."""
    directory = base.parent / PROFILE_DIR
    if not directory.is_dir():
        return []
    return sorted({p.stem for p in directory.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()})
