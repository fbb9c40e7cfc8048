"""The model registry in PostgreSQL: :class:`PostgresStore` is its own ModelRegistry through this mixin.

The statements are shared with SQLite (:mod:`runpoint.store.model_sql`); here a change
locks the model's row (``SELECT ... FOR UPDATE``) first, so two registrations of one
model are numbered 1 and 2 and two moves of one alias run one after the other, the
second seeing the first (a compare-and-set that lost is recorded as a ``conflict``).

Example::

    store = PostgresStore("postgresql://runpoint@db/runpoint")
    store.move_alias("digits", "champion", 3, expected=2, by="ana")
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Sequence

from ..model_records import (
    AliasEvent,
    AliasRecord,
    ModelRecord,
    ModelVersionRecord,
    raise_on_conflict,
)
from ..model_sql import ModelSQL

_SQL = ModelSQL("%s", lock=" FOR UPDATE")


class PostgresModelRegistry:
    """The :class:`~runpoint.store.base.ModelRegistry` methods of :class:`~runpoint.store.postgres.PostgresStore`."""

    _transaction: Any  # from PostgresConnections
    _reading: Any

    def register_version(self, version: ModelVersionRecord, *, project: str) -> ModelVersionRecord:
        with self._transaction() as conn:
            return _SQL.register(conn, version, project)

    def _read(self) -> AbstractContextManager[Any]:
        return self._reading()  # type: ignore[no-any-return]

    def get_model(self, name: str) -> ModelRecord:
        with self._read() as conn:
            return _SQL.get_model(conn, name)

    def list_models(self, project: str | None = None) -> list[ModelRecord]:
        with self._read() as conn:
            return _SQL.list_models(conn, project)

    def get_version(self, name: str, version: int, *, include_deleted: bool = False) -> ModelVersionRecord:
        with self._read() as conn:
            return _SQL.get_version(conn, name, version, include_deleted)

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersionRecord]:
        with self._read() as conn:
            return _SQL.list_versions(conn, name, include_deleted)

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: Sequence[str] | None = None) -> ModelVersionRecord:
        with self._transaction() as conn:
            return _SQL.update_version(conn, name, version, description, tags)

    def repin_version(self, name: str, version: int, *, old_hash: str, new_hash: str, by: str | None = None,
                      why: str = "rekey") -> ModelVersionRecord:
        with self._transaction() as conn:
            return _SQL.repin_version(conn, name, version, old_hash, new_hash, by, why)

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> ModelVersionRecord:
        with self._transaction() as conn:
            return _SQL.delete_version(conn, name, version, by)

    def list_aliases(self, name: str) -> list[AliasRecord]:
        with self._read() as conn:
            return _SQL.list_aliases(conn, name)

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None = None,
                   by: str | None = None) -> AliasEvent:
        with self._transaction() as conn:
            event = _SQL.move_alias(conn, name, alias, version, expected, by)
        return raise_on_conflict(event)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        with self._read() as conn:
            return _SQL.alias_history(conn, name, alias)

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        with self._read() as conn:
            return _SQL.versions_of_run(conn, run_id)
