"""Configuration: typed configs from files, profiles, the environment and overrides.

- :func:`load_config` / :func:`resolve_config` (``load.py``): defaults < base file <
  profile < ``RUNPOINT__SECTION__FIELD`` < overrides, ``${...}`` references, validation.
- :class:`ProjectConfig` and its sections (``schema.py``); presets (``presets.py``).
- :func:`from_argv` / :func:`parse_argv` (``argv.py``): ``python train.py --profile prod a.b=1``.
- :func:`diff_configs` (``diff.py``), :func:`dump_config`, :func:`with_overrides`.
- :func:`to_plain`, :func:`flatten`, :func:`config_hash`, :func:`mask_secrets`: what
  ``rp.init(config=...)`` stores.

Only the last group is imported eagerly; the rest (pydantic, yaml) loads on first use.

Example::

    from runpoint import config

    cfg = config.from_argv("configs/base.yaml")     # --profile, --config and a.b=c from sys.argv
    print(config.config_hash(cfg))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util.lazy import lazy_attributes
from .._util.secrets import MASK, is_secret_key, mask_argv, mask_secrets
from .normalize import config_hash, flatten, to_plain

_LAZY = {
    "ProjectConfig": ".schema",
    "ResolvedConfig": ".load",
    "ArgvConfig": ".argv",
    "ConfigDiff": ".diff",
    "diff_configs": ".diff",
    "dump_config": ".load",
    "from_argv": ".argv",
    "load_config": ".load",
    "parse_argv": ".argv",
    "resolve_config": ".load",
    "with_overrides": ".load",
}

__all__ = [
    "MASK",
    "ArgvConfig",
    "ConfigDiff",
    "ProjectConfig",
    "ResolvedConfig",
    "config_hash",
    "diff_configs",
    "dump_config",
    "flatten",
    "from_argv",
    "is_secret_key",
    "load_config",
    "mask_argv",
    "mask_secrets",
    "parse_argv",
    "resolve_config",
    "to_plain",
    "with_overrides",
]


_SUBMODULES = {"argv", "diff", "load", "presets", "schema"}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, _SUBMODULES, __all__)


if TYPE_CHECKING:
    from .argv import ArgvConfig, from_argv, parse_argv
    from .diff import ConfigDiff, diff_configs
    from .load import (
        ResolvedConfig,
        dump_config,
        load_config,
        resolve_config,
        with_overrides,
    )
    from .schema import ProjectConfig
