"""The model registry's statements, shared by the SQLite and the PostgreSQL store.

The two backends have the same tables (schema 4 / 2) and the same semantics; they differ
in the parameter marker (``?`` / ``%s``) and in how a transaction keeps others out: SQLite's
``BEGIN IMMEDIATE`` takes the database's write lock at once, PostgreSQL locks the model's
row (``SELECT ... FOR UPDATE``), so two registrations of one model, or two moves of one of
its aliases, run one after the other and the second sees what the first did. Every function
takes a connection inside the caller's transaction (reads: any connection).

Example::

    sql = ModelSQL("?", lock="")                       # SQLite
    with store._transaction() as conn:
        record = sql.register(conn, version, "vision")
"""

from __future__ import annotations

import json
import time
from typing import Any, Sequence

from ..errors import InvalidArgumentError, ModelNotFoundError, PinConflictError
from .model_records import (
    AliasEvent,
    AliasRecord,
    ModelRecord,
    ModelVersionRecord,
    alias_from_row,
    check_alias,
    check_model_name,
    check_tags,
    check_version,
    event_from_row,
    model_from_row,
    version_from_row,
)

_LISTED = 20  # how many names an error message lists


def _listing(names: Sequence[Any]) -> str:
    shown = ", ".join(str(name) for name in names[:_LISTED])
    return shown + (f" (and {len(names) - _LISTED} more)" if len(names) > _LISTED else "") if names else "none"


class ModelSQL:
    """The registry's statements in one backend's dialect: its parameter marker and row-lock clause."""

    def __init__(self, marker: str, lock: str) -> None:
        self.marker = marker
        self.lock = lock

    def _run(self, conn: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        return conn.execute(sql.replace("?", self.marker), tuple(params))

    # -- models ----------------------------------------------------------------------

    def _model_row(self, conn: Any, name: str, *, lock: bool = False) -> Any:
        row = self._run(conn, "SELECT * FROM models WHERE name = ?" + (self.lock if lock else ""), (name,)).fetchone()
        if row is None:
            names = [r["name"] for r in self._run(conn, "SELECT name FROM models ORDER BY name").fetchall()]
            raise ModelNotFoundError(f"no model {name!r}; models: {_listing(names)}", name)
        return row

    def get_model(self, conn: Any, name: str) -> ModelRecord:
        return model_from_row(self._model_row(conn, check_model_name(name)))

    def list_models(self, conn: Any, project: str | None) -> list[ModelRecord]:
        if project is None:
            rows = self._run(conn, "SELECT * FROM models ORDER BY name").fetchall()
        else:
            rows = self._run(conn, "SELECT * FROM models WHERE project = ? ORDER BY name", (project,)).fetchall()
        return [model_from_row(row) for row in rows]

    # -- versions --------------------------------------------------------------------

    def register(self, conn: Any, version: ModelVersionRecord, project: str) -> ModelVersionRecord:
        """Insert the next version of the model (creating the model in ``project`` when new)."""
        name = check_model_name(version.name)
        tags = check_tags(version.tags)
        now = time.time()
        self._run(conn, "INSERT INTO models (name, project, description, created_at, created_by) VALUES (?,?,?,?,?)"
                  " ON CONFLICT (name) DO NOTHING", (name, project, "", now, version.registered_by))
        row = self._model_row(conn, name, lock=True)  # serializes the registrations of this model
        if row["project"] != project:
            raise InvalidArgumentError("name", f"model {name!r} is in project {row['project']!r}, not {project!r}; "
                                               "pick another name")
        number = self._run(conn, "SELECT COALESCE(MAX(version), 0) + 1 AS n FROM model_versions WHERE name = ?",
                           (name,)).fetchone()["n"]
        self._run(
            conn,
            "INSERT INTO model_versions (name, version, run_id, step, checkpoint, manifest_hash, lineage, description,"
            " tags, registered_at, registered_by) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (name, number, version.run_id, version.step, version.checkpoint, version.manifest_hash,
             json.dumps(version.lineage, sort_keys=True, default=str), version.description, json.dumps(list(tags)),
             now, version.registered_by),
        )
        return self.get_version(conn, name, number)

    def _version_rows(self, conn: Any, name: str, include_deleted: bool) -> list[Any]:
        sql = "SELECT * FROM model_versions WHERE name = ?" + ("" if include_deleted else " AND deleted_at IS NULL")
        return list(self._run(conn, sql + " ORDER BY version", (name,)).fetchall())

    def get_version(self, conn: Any, name: str, version: int, include_deleted: bool = False) -> ModelVersionRecord:
        check_model_name(name)
        check_version(version)
        row = self._run(conn, "SELECT * FROM model_versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None or (row["deleted_at"] is not None and not include_deleted):
            self._model_row(conn, name)  # no model at all: say so
            live = [r["version"] for r in self._version_rows(conn, name, False)]
            why = " (it was deleted)" if row is not None else ""
            raise ModelNotFoundError(f"model {name!r} has no version {version}{why}; versions: {_listing(live)}", name)
        return version_from_row(row)

    def list_versions(self, conn: Any, name: str, include_deleted: bool) -> list[ModelVersionRecord]:
        self._model_row(conn, check_model_name(name))
        return [version_from_row(row) for row in self._version_rows(conn, name, include_deleted)]

    def update_version(self, conn: Any, name: str, version: int, description: str | None,
                       tags: Sequence[str] | None) -> ModelVersionRecord:
        self._model_row(conn, check_model_name(name), lock=True)
        self.get_version(conn, name, version)
        if description is not None:
            self._run(conn, "UPDATE model_versions SET description = ? WHERE name = ? AND version = ?",
                      (str(description), name, version))
        if tags is not None:
            self._run(conn, "UPDATE model_versions SET tags = ? WHERE name = ? AND version = ?",
                      (json.dumps(list(check_tags(tags))), name, version))
        return self.get_version(conn, name, version)

    def repin_version(self, conn: Any, name: str, version: int, old_hash: str, new_hash: str, by: str | None,
                      why: str) -> ModelVersionRecord:
        """Point the version at its checkpoint's new manifest hash if it pins ``old_hash`` now (else conflict)."""
        self._model_row(conn, check_model_name(name), lock=True)
        record = self.get_version(conn, name, version)
        if record.manifest_hash == new_hash:
            return record  # already re-pinned (a rerun)
        if record.manifest_hash != old_hash:
            raise PinConflictError(f"model version {record.ref} pins manifest hash {record.manifest_hash}, not "
                                   f"{old_hash}: it was not re-pinned to {new_hash}", record.ref)
        lineage = dict(record.lineage)
        lineage["repinned"] = [*lineage.get("repinned", []),
                               {"from": old_hash, "to": new_hash, "at": time.time(), "by": by, "why": str(why)}]
        self._run(conn, "UPDATE model_versions SET manifest_hash = ?, lineage = ? WHERE name = ? AND version = ?",
                  (new_hash, json.dumps(lineage, sort_keys=True, default=str), name, version))
        return self.get_version(conn, name, version)

    def delete_version(self, conn: Any, name: str, version: int, by: str | None) -> ModelVersionRecord:
        """Mark the version deleted and remove the aliases that name it (each a ``removed`` event)."""
        self._model_row(conn, check_model_name(name), lock=True)
        self.get_version(conn, name, version)
        now = time.time()
        for alias in self._run(conn, "SELECT alias FROM model_aliases WHERE name = ? AND version = ?",
                               (name, version)).fetchall():
            self._run(conn, "DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias["alias"]))
            self._event(conn, name, alias["alias"], version, None, "removed", now, by, None)
        self._run(conn, "UPDATE model_versions SET deleted_at = ? WHERE name = ? AND version = ?", (now, name, version))
        return self.get_version(conn, name, version, include_deleted=True)

    def versions_of_run(self, conn: Any, run_id: str) -> list[ModelVersionRecord]:
        rows = self._run(conn, "SELECT * FROM model_versions WHERE run_id = ? AND deleted_at IS NULL"
                               " ORDER BY name, version", (run_id,)).fetchall()
        return [version_from_row(row) for row in rows]

    # -- aliases ---------------------------------------------------------------------

    def list_aliases(self, conn: Any, name: str) -> list[AliasRecord]:
        self._model_row(conn, check_model_name(name))
        rows = self._run(conn, "SELECT * FROM model_aliases WHERE name = ? ORDER BY alias", (name,)).fetchall()
        return [alias_from_row(row) for row in rows]

    def _event(self, conn: Any, name: str, alias: str, from_version: int | None, to_version: int | None,
               outcome: str, at: float, by: str | None, expected: int | None) -> AliasEvent:
        row = self._run(
            conn, "INSERT INTO model_alias_events (name, alias, from_version, to_version, expected, outcome, at, by)"
                  " VALUES (?,?,?,?,?,?,?,?) RETURNING *",
            (name, alias, from_version, to_version, expected, outcome, at, by)).fetchone()
        return event_from_row(row)

    def move_alias(self, conn: Any, name: str, alias: str, version: int | None, expected: int | None,
                   by: str | None) -> AliasEvent:
        """Move (or remove) the alias as a compare-and-set; a lost race is returned as a ``conflict`` event.

        The caller commits, then raises AliasConflictError for a conflict: the event must stay.
        """
        self._model_row(conn, check_model_name(name), lock=True)  # one mover of this model's aliases at a time
        check_alias(alias)
        if expected is not None and expected != 0:
            check_version(expected)
        if version is not None:
            self.get_version(conn, name, version)
        row = self._run(conn, "SELECT version FROM model_aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
        current = row["version"] if row is not None else None
        now = time.time()
        if expected is not None and (current or 0) != expected:
            return self._event(conn, name, alias, current, version, "conflict", now, by, expected)
        if version is None:
            if current is None:
                aliases = [a.alias for a in self.list_aliases(conn, name)]
                raise ModelNotFoundError(f"no alias {alias!r} on model {name!r} (aliases: {_listing(aliases)})", name)
            self._run(conn, "DELETE FROM model_aliases WHERE name = ? AND alias = ?", (name, alias))
            return self._event(conn, name, alias, current, None, "removed", now, by, expected)
        self._run(conn, "INSERT INTO model_aliases (name, alias, version, moved_at, moved_by) VALUES (?,?,?,?,?)"
                        " ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version,"
                        " moved_at = excluded.moved_at, moved_by = excluded.moved_by",
                  (name, alias, version, now, by))
        return self._event(conn, name, alias, current, version, "moved", now, by, expected)

    def alias_history(self, conn: Any, name: str, alias: str | None) -> list[AliasEvent]:
        self._model_row(conn, check_model_name(name))
        if alias is None:
            rows = self._run(conn, "SELECT * FROM model_alias_events WHERE name = ? ORDER BY id", (name,)).fetchall()
        else:
            rows = self._run(conn, "SELECT * FROM model_alias_events WHERE name = ? AND alias = ? ORDER BY id",
                             (name, check_alias(alias))).fetchall()
        return [event_from_row(row) for row in rows]
