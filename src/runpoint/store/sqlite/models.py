"""The model registry in a root's ``runpoint.db``: the ``models``, ``model_versions`` and alias tables.

Example::

    registry = SQLiteModelRegistry(store)
    for version in registry.versions_of_run(run.id):
        print(version.name, version.version, version.step)
"""

from __future__ import annotations

import json
import sqlite3

from ..model_records import ModelVersionRecord
from .store import SQLiteStore


class SQLiteModelRegistry:
    """A :class:`~runpoint.store.base.ModelRegistry` over a :class:`SQLiteStore`."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def __repr__(self) -> str:
        return f"SQLiteModelRegistry({self.store.location!r})"

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        with self.store._translate_errors():
            rows = self.store._conn().execute(
                "SELECT * FROM model_versions WHERE run_id = ? AND deleted_at IS NULL ORDER BY name, version",
                (run_id,),
            ).fetchall()
        return [version_record(row) for row in rows]


def version_record(row: sqlite3.Row) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=row["name"], version=row["version"], checkpoint=row["checkpoint"],
        registered_at=row["registered_at"], run_id=row["run_id"], step=row["step"],
        manifest_hash=row["manifest_hash"], lineage=json.loads(row["lineage"]),
        description=row["description"], tags=tuple(json.loads(row["tags"])),
        registered_by=row["registered_by"], deleted_at=row["deleted_at"],
    )
