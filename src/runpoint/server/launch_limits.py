"""What a config submitted to the Launch API may hold, beyond the entry point's own schema.

The dashboard starts processes on this machine, so a submitted config may not:

- nest deeper than :data:`MAX_CONFIG_DEPTH` (the merge, the validation and the YAML dump
  recurse; a config 900 levels deep must be a 422, not a crashed request);
- send the run's files outside the dashboard's root: ``experiment.root`` names the root or
  nothing, and a sink's local paths (TensorBoard's ``logdir``, wandb's ``dir``, an MLflow
  ``tracking_uri`` that is a file or SQLite path) resolve inside it.

Each check returns the problems it finds, one line each naming the field, like
:func:`~runpoint.server.entry_points.validate_json`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import unquote, urlsplit

MAX_CONFIG_DEPTH = 32

# sink name -> its options that are local paths (a URI option is read by _uri_path)
_PATH_OPTIONS = {"tensorboard": ("logdir",), "wandb": ("dir",)}
_URI_OPTIONS = {"mlflow": ("tracking_uri",)}


def config_depth(value: Any) -> int:
    """How deeply ``value`` nests mappings and lists (a scalar is 0); iterative, so any depth is measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if deepest > MAX_CONFIG_DEPTH:  # enough to refuse it: stop counting
            return deepest
        stack.extend((child, depth) for child in children)
    return deepest


def _sink_entries(sinks: Any) -> Iterator[tuple[str, Any]]:
    """(name, options) of each entry of ``experiment.sinks`` in the forms the config accepts."""
    if isinstance(sinks, Mapping):
        sinks = [{name: options} for name, options in sinks.items()]
    if not isinstance(sinks, list):
        return
    for entry in sinks:
        if isinstance(entry, Mapping):
            for name, options in entry.items():
                yield str(name), options


def _uri_path(uri: str) -> str | None:
    """The local path a tracking URI writes to; None for a server (http, databricks ...)."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return unquote(parts.path) if parts.scheme else uri
    if parts.scheme == "sqlite":
        return unquote(uri.split(":///", 1)[1]) if ":///" in uri else None
    return None


def _outside(path: str, root: Path, cwd: Path) -> bool:
    target = (cwd / Path(path).expanduser()).resolve()
    root = root.resolve()
    return target != root and root not in target.parents


def path_problems(config: Mapping[str, Any], root: Path, cwd: Path) -> list[str]:
    """Fields of ``config`` that would make the launched process write outside ``root``.

    Relative paths are read from ``cwd``, the directory the process starts in.
    """
    experiment = config.get("experiment")
    if not isinstance(experiment, Mapping):
        return []
    problems = []
    where = experiment.get("root")
    if where is not None and (not isinstance(where, str) or "://" in where or _outside(where, root, cwd)):
        problems.append(f"experiment.root: a launch records into the dashboard's root ({root}); leave it unset")
    for name, options in _sink_entries(experiment.get("sinks")):
        if not isinstance(options, Mapping):
            continue
        for key in _PATH_OPTIONS.get(name, ()) + _URI_OPTIONS.get(name, ()):
            value = options.get(key)
            if value is None:
                continue
            local = _uri_path(value) if isinstance(value, str) and key in _URI_OPTIONS.get(name, ()) else value
            if local is None:
                continue
            if not isinstance(local, str) or not local or "\x00" in local or _outside(local, root, cwd):
                problems.append(f"experiment.sinks.{name}.{key}: {value!r} is outside the dashboard's root ({root}); "
                                "give a path inside it")
    return problems


def launch_cwd(entry_cwd: str | None) -> Path:
    """The directory a launched process starts in (the entry point's, else the server's)."""
    return Path(entry_cwd or os.getcwd())
