"""The model registry of a runpoint server: the ModelRegistry methods of :class:`~runpoint.remote.HttpStore`.

The routes are in :mod:`runpoint.server.store_api_registry`. An unknown model, version or
alias (404) comes back as :class:`~runpoint.errors.ModelNotFoundError` with the server's
message (which names what exists); a lost alias compare-and-set as
:class:`~runpoint.errors.AliasConflictError` (the server recorded it).

Example::

    store = HttpStore("https://runpoint.example.com")
    store.move_alias("digits", "champion", 3, expected=2)
"""

from __future__ import annotations

from typing import Any, Sequence
from urllib.parse import quote

from ..errors import ModelNotFoundError, PinConflictError, RunpointError, StoreError
from ..store.model_records import (
    AliasEvent,
    AliasRecord,
    ModelRecord,
    ModelVersionRecord,
    check_model_name,
    raise_on_conflict,
    to_wire,
    version_from_wire,
)
from .http import HttpSession


class HttpModelRegistry:
    """The :class:`~runpoint.store.base.ModelRegistry` half of :class:`~runpoint.remote.HttpStore`."""

    _http: HttpSession
    location: str

    def _model(self, name: str, tail: str = "") -> str:
        return f"/api/store/models/{quote(check_model_name(name), safe='')}{tail}"

    def _registry_call(self, method: str, path: str, name: str | None = None, **kwargs: Any) -> Any:
        try:
            return self._http.call(method, path, **kwargs)
        except RunpointError as exc:
            if type(exc) is not RunpointError:  # access denied, bad input, the server down: as they are
                raise
            if str(exc) == "Not Found":
                raise StoreError(f"{self.location}: this server has no model registry; upgrade it",
                                 self.location) from None
            raise ModelNotFoundError(str(exc), name) from None

    def register_version(self, version: ModelVersionRecord, *, project: str) -> ModelVersionRecord:
        body = {k: v for k, v in to_wire(version).items() if k not in ("name", "version", "registered_at", "deleted_at")}
        body["project"] = project
        value = self._registry_call("POST", self._model(version.name, "/versions"), version.name, json_body=body,
                                    idempotent=False)
        return version_from_wire(value)

    def get_model(self, name: str) -> ModelRecord:
        return ModelRecord(**self._registry_call("GET", self._model(name), name))

    def list_models(self, project: str | None = None) -> list[ModelRecord]:
        params = {"project": project} if project is not None else None
        return [ModelRecord(**value) for value in self._registry_call("GET", "/api/store/models", params=params)]

    def get_version(self, name: str, version: int, *, include_deleted: bool = False) -> ModelVersionRecord:
        params = {"include_deleted": "true" if include_deleted else "false"}
        return version_from_wire(self._registry_call("GET", self._model(name, f"/versions/{int(version)}"), name,
                                                     params=params))

    def list_versions(self, name: str, *, include_deleted: bool = False) -> list[ModelVersionRecord]:
        params = {"include_deleted": "true" if include_deleted else "false"}
        values = self._registry_call("GET", self._model(name, "/versions"), name, params=params)
        return [version_from_wire(value) for value in values]

    def update_version(self, name: str, version: int, *, description: str | None = None,
                       tags: Sequence[str] | None = None) -> ModelVersionRecord:
        body = {"description": description, "tags": list(tags) if tags is not None else None}
        return version_from_wire(self._registry_call("PATCH", self._model(name, f"/versions/{int(version)}"), name,
                                                     json_body=body))

    def repin_version(self, name: str, version: int, *, old_hash: str, new_hash: str, by: str | None = None,
                      why: str = "rekey") -> ModelVersionRecord:
        body = {"old_hash": old_hash, "new_hash": new_hash, "by": by, "why": why}
        try:  # (a retry is safe: a version already re-pinned is returned as it is)
            value = self._registry_call("POST", self._model(name, f"/versions/{int(version)}/repin"), name,
                                        json_body=body)
        except ModelNotFoundError as exc:
            if " pins manifest hash " in str(exc):  # the server's 409
                raise PinConflictError(str(exc), f"{name}:{int(version)}") from None
            raise
        return version_from_wire(value)

    def delete_version(self, name: str, version: int, *, by: str | None = None) -> ModelVersionRecord:
        params = {"by": by} if by is not None else None
        return version_from_wire(self._registry_call("DELETE", self._model(name, f"/versions/{int(version)}"), name,
                                                     params=params, idempotent=False))

    def list_aliases(self, name: str) -> list[AliasRecord]:
        return [AliasRecord(**value) for value in self._registry_call("GET", self._model(name, "/aliases"), name)]

    def move_alias(self, name: str, alias: str, version: int | None, *, expected: int | None = None,
                   by: str | None = None) -> AliasEvent:
        body = {"version": version, "expected": expected, "by": by}
        value = self._registry_call("PUT", self._model(name, f"/aliases/{quote(alias, safe='')}"), name,
                                    json_body=body, idempotent=False)
        return raise_on_conflict(AliasEvent(**value))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        params = {"alias": alias} if alias is not None else None
        values = self._registry_call("GET", self._model(name, "/aliases/history"), name, params=params)
        return [AliasEvent(**value) for value in values]

    def versions_of_run(self, run_id: str) -> list[ModelVersionRecord]:
        values = self._http.call("GET", f"/api/store/runs/{quote(run_id, safe='')}/model-versions", run_id=run_id)
        return [version_from_wire(value) for value in values]
