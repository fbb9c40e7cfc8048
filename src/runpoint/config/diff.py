"""What differs between two configs, field by field.

Both sides are flattened to dotted paths (``training.learning_rate``) after secrets are
masked; values compare as the config hash does, so ``1`` equals ``1.0`` and key order
does not matter.

Example::

    from runpoint.config import diff_configs

    d = diff_configs(rp.load_config("a.yaml"), rp.load_config("b.yaml"))
    d.changed        # {"training.learning_rate": (0.001, 0.0003)}
    d.only_a, d.only_b, d.identical
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._util.secrets import mask_secrets
from .normalize import _canonical, flatten, to_plain


@dataclass(frozen=True)
class ConfigDiff:
    """``changed`` (path -> (a, b)), ``only_a`` / ``only_b`` (path -> value), ``same`` (path -> value)."""

    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    only_a: dict[str, Any] = field(default_factory=dict)
    only_b: dict[str, Any] = field(default_factory=dict)
    same: dict[str, Any] = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return not (self.changed or self.only_a or self.only_b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "identical": self.identical,
            "changed": {key: {"a": a, "b": b} for key, (a, b) in self.changed.items()},
            "only_a": self.only_a,
            "only_b": self.only_b,
            "same": len(self.same),
        }


def _key(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, default=str)


def diff_configs(a: Any, b: Any) -> ConfigDiff:
    """Compare two configs: dicts, pydantic models, dataclasses (anything ``rp.init`` takes)."""
    flat_a = flatten(mask_secrets(to_plain(a)))
    flat_b = flatten(mask_secrets(to_plain(b)))
    result = ConfigDiff()
    for key in list(flat_a) + [k for k in flat_b if k not in flat_a]:
        if key not in flat_b:
            result.only_a[key] = flat_a[key]
        elif key not in flat_a:
            result.only_b[key] = flat_b[key]
        elif _key(flat_a[key]) == _key(flat_b[key]):
            result.same[key] = flat_a[key]
        else:
            result.changed[key] = (flat_a[key], flat_b[key])
    return result
