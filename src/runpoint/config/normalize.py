"""Turning whatever a user passes as ``config`` into plain data, params and a hash.

``rp.init(config=...)`` accepts a dict, a pydantic model, a dataclass or an
``argparse.Namespace``. :func:`to_plain` makes a JSON-compatible tree of it,
:func:`flatten` the dotted params the store indexes (``training.learning_rate``), and
:func:`config_hash` a digest that depends on the values only, not on key order or on how
the file was formatted.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import hashlib
import json
import math
import os
from typing import Any, Mapping

from .._util.secrets import mask_secrets
from ..errors import InvalidArgumentError


def to_plain(config: Any) -> dict[str, Any]:
    """A JSON-compatible dict of ``config``; ``None`` gives ``{}``."""
    if config is None:
        return {}
    tree = _plain(config)
    if not isinstance(tree, dict):
        raise InvalidArgumentError(
            "config",
            f"expected a dict, pydantic model, dataclass or argparse.Namespace, got {type(config).__qualname__}",
        )
    return tree


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=repr)
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):  # pydantic v2 model
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):  # argparse.Namespace
        return {k: _plain(v) for k, v in vars(value).items()}
    if type(value).__name__ in {"SecretStr", "SecretBytes"}:
        return value  # kept as is, so that masking recognises it
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return value.item()  # numpy scalars, 0-d tensors
    if hasattr(value, "tolist") and callable(value.tolist):
        return value.tolist()  # numpy arrays, tensors
    return str(value)


def flatten(tree: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, path, sep))
        else:
            flat[path] = value
    return flat


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value.is_integer():
            return int(value)  # 1.0 and 1 describe the same config
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def config_hash(config: Any) -> str:
    """SHA-256 of the canonical JSON of a config (sorted keys, no whitespace, secrets masked).

    ``config`` is anything :func:`to_plain` takes; the hash is that of what a run records,
    so ``rp.config.config_hash(cfg)`` matches the ``config_hash`` of a run started with ``cfg``.
    """
    tree = mask_secrets(to_plain(config))
    text = json.dumps(_canonical(tree), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``override`` merged in, mapping by mapping (lists are replaced).

    >>> deep_merge({"training": {"epochs": 3, "seed": 0}}, {"training": {"epochs": 5}})
    {'training': {'epochs': 5, 'seed': 0}}
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
