"""Optional packages: checking for them cheaply and importing them with a useful error.

Sinks, integrations and importers use packages that runpoint does not install by
default. They import them here, at the moment they are needed, so that ``import
runpoint`` never pays for them and a missing one says which extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from ..errors import MissingDependencyError


def is_installed(package: str) -> bool:
    """True when ``package`` can be imported; looks on the path without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def check(package: str, extra: str, feature: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``package`` is installed (no import)."""
    if not is_installed(package):
        raise MissingDependencyError(package, extra, feature)


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``; a missing package raises :class:`MissingDependencyError`.

    Example::

        mlflow = require("mlflow", "mlflow", "the mlflow sink")
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        top = module.split(".")[0]
        if exc.name is not None and exc.name.split(".")[0] not in {top, module}:
            raise  # the package is there but one of its own dependencies is missing
        raise MissingDependencyError(top, extra, feature) from exc
