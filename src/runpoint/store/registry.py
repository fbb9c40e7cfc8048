"""Choosing a store backend by URI, the way MLflow's store registry does.

    open_store("runpoint")                    a root directory: <root>/runpoint.db
    open_store("sqlite:////abs/path/runpoint.db")
    open_store("sqlite:///relative.db")       relative to the working directory (SQLAlchemy's rule)
    open_store("postgresql://user@host:5432/db")   also postgres://; needs the server extra (psycopg)

    open_store("https://runpoint.example.com")     a team server (runpoint server); token from $RUNPOINT_TOKEN
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from .._util.uri import without_credentials
from ..artifacts.paths import DB_NAME
from ..errors import StoreError
from .base import AlertStore, CheckpointRegistry, ModelRegistry, Store

_BACKENDS: dict[str, Callable[[str, bool], Store]] = {}


def register_backend(scheme: str, factory: Callable[[str, bool], Store]) -> None:
    """Make ``open_store`` build ``factory(uri, create)`` for URIs of ``scheme``."""
    _BACKENDS[scheme] = factory


def _sqlite(uri: str, create: bool) -> Store:
    from .sqlite.store import SQLiteStore

    # SQLAlchemy's convention: sqlite:///relative.db and sqlite:////absolute/path.db
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else uri[len("sqlite://"):]
    return SQLiteStore(path, create=create)


def _postgres(uri: str, create: bool) -> Store:
    try:
        from .postgres import PostgresStore
    except ImportError as exc:
        raise StoreError(
            f"a postgresql:// store needs psycopg 3 ({exc}); install it with pip install 'runpoint[server]'",
            without_credentials(uri),
        ) from exc
    return PostgresStore(uri, create=create)


register_backend("sqlite", _sqlite)
register_backend("postgresql", _postgres)
register_backend("postgres", _postgres)

# Backends defined in packages above this one: they import the store, so the store must not
# import them (no package cycle). Their module registers them when imported; open_store
# imports it the first time a URI of its scheme is opened.
_PLUGIN_MODULES = {"http": "runpoint.remote.store", "https": "runpoint.remote.store"}


def open_store(location: str | os.PathLike[str], *, create: bool = True) -> Store:
    """Open the store at ``location``: a URI with a registered scheme, or a root directory."""
    text = os.fspath(location)
    scheme, sep, _ = text.partition("://")
    if sep:
        if scheme not in _BACKENDS and scheme in _PLUGIN_MODULES:
            import importlib

            importlib.import_module(_PLUGIN_MODULES[scheme])
        factory = _BACKENDS.get(scheme)
        if factory is None:
            known = ", ".join(sorted(_BACKENDS))
            raise StoreError(f"no store backend for {scheme}:// (known: {known})", text)
        return factory(text, create)
    from .sqlite.store import SQLiteStore

    root = Path(text)
    if not create and not (root / DB_NAME).exists():
        raise StoreError(f"no runpoint store at {root} (it has no {DB_NAME})", root)
    return SQLiteStore(root / DB_NAME, create=create)


def checkpoint_registry(store: Store) -> CheckpointRegistry | None:
    """The checkpoint registry that goes with ``store``, or None if its backend has none."""
    if isinstance(store, CheckpointRegistry):
        return store
    from .sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.checkpoints import SQLiteCheckpointRegistry

        return SQLiteCheckpointRegistry(store)
    return None


def model_registry(store: Store) -> ModelRegistry | None:
    """The model registry that goes with ``store``, or None if its backend has none."""
    if isinstance(store, ModelRegistry):
        return store
    from .sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.models import SQLiteModelRegistry

        return SQLiteModelRegistry(store)
    return None


def alert_store(store: Store) -> AlertStore | None:
    """The alerts of ``store``'s runs (:class:`AlertStore`), or None if its backend keeps none.

    Example::

        alerts = alert_store(open_store(root))
        counts = alerts.alert_counts([run.id]) if alerts is not None else {}
    """
    if isinstance(store, AlertStore):
        return store
    from .sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        from .sqlite.alerts import SQLiteAlertStore

        return SQLiteAlertStore(store)
    return None


def registered_steps(store: Store, run_id: str) -> set[int]:
    """The steps of ``run_id``'s checkpoints that a registered model version names: never delete them."""
    registry = model_registry(store)
    if registry is None:
        return set()
    return {version.step for version in registry.versions_of_run(run_id)
            if version.step is not None and version.deleted_at is None}
