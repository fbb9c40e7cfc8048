"""The model registry in a root's ``runpoint.db``: the ``models``, ``model_versions`` and alias tables.

Every change is one ``BEGIN IMMEDIATE`` transaction of the store (the database's write
lock is taken at once), so two registrations of one model get versions 1 and 2 and two
moves of one alias run one after the other; the statements are shared with PostgreSQL
(:mod:`runpoint.store.model_sql`).

Example::

    registry = SQLiteModelRegistry(store)
    for version in registry.versions_of_run(run.id):
        print(version.name, version.version, version.step)
"""

from __future__ import annotations

from typing import Sequence

from ..model_records import (
    AliasEvent,
    AliasRecord,
    ModelRecord,
    ModelVersionRecord,
    raise_on_conflict,
)
from ..model_sql import ModelSQL
from .store import SQLiteStore

_SQL = ModelSQL("?", lock="")  # BEGIN IMMEDIATE already holds the write lock


class SQLiteModelRegistry:
    """A :class:`~runpoint.store.base.ModelRegistry` over a :class:`SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"SQLiteModelRegistry({self.store.location!r})"

    def register_version(self, version: ModelVersionRecord, *, project: str) -> ModelVersionRecord:
        with self.store._transaction() as conn:
            return _SQL.register(conn, version, project)

    def get_model(self, name: str) -> ModelRecord:
        with self.store._translate_errors():
            return _SQL.get_model(self.store._conn(), name)

    def list_models(self, project: str | None = None) -> list[ModelRecord]:
        with self.store._translate_errors():
            return _SQL.list_models(self.store._conn(), project)

    def get_version(self, name: str, version: int, *, include_deleted: bool = False) -> ModelVersionRecord:
        with self.store._translate_errors():
            return _SQL.get_version(self.store._conn(), name, version, include_deleted)

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersionRecord]:
        with self.store._translate_errors():
            return _SQL.list_versions(self.store._conn(), name, include_deleted)

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: Sequence[str] | None = None) -> ModelVersionRecord:
        with self.store._transaction() as conn:
            return _SQL.update_version(conn, name, version, description, tags)

    def repin_version(self, name: str, version: int, *, old_hash: str, new_hash: str, by: str | None = None,
                      why: str = "rekey") -> ModelVersionRecord:
        with self.store._transaction() as conn:
            return _SQL.repin_version(conn, name, version, old_hash, new_hash, by, why)

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> ModelVersionRecord:
        with self.store._transaction() as conn:
            return _SQL.delete_version(conn, name, version, by)

    def list_aliases(self, name: str) -> list[AliasRecord]:
        with self.store._translate_errors():
            return _SQL.list_aliases(self.store._conn(), name)

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None = None,
                   by: str | None = None) -> AliasEvent:
        with self.store._transaction() as conn:
            event = _SQL.move_alias(conn, name, alias, version, expected, by)
        return raise_on_conflict(event)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self.store._translate_errors():
            return _SQL.alias_history(self.store._conn(), name, alias)

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        with self.store._translate_errors():
            return _SQL.versions_of_run(self.store._conn(), run_id)

