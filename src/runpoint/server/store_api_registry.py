"""The store API's model registry: the ModelRegistry protocol over HTTP.

A model belongs to a project: reading it needs the ``read`` scope on that project,
registering, moving aliases, editing and deleting the ``write`` scope; a token limited to
a project lists and sees only that project's models. Who did it is the token's user
(a server without accounts takes the ``by`` the client sends). An alias move that loses
its compare-and-set is not an HTTP error: the reply is the recorded ``conflict`` event,
and the client raises :class:`~runpoint.errors.AliasConflictError` from it.

    GET    /api/store/models?project=...                      list_models
    GET    /api/store/models/{name}                           get_model
    POST   /api/store/models/{name}/versions                  register_version  -> 201, the version
    GET    /api/store/models/{name}/versions?include_deleted= list_versions
    GET    /api/store/models/{name}/versions/{v}              get_version
    PATCH  /api/store/models/{name}/versions/{v}              update_version {description, tags}
    POST   /api/store/models/{name}/versions/{v}/repin        repin_version {old_hash, new_hash, by, why} -> the
                                                              version; 409 when it pins another hash
    DELETE /api/store/models/{name}/versions/{v}?by=          delete_version    -> the version, deleted
    GET    /api/store/models/{name}/aliases                   list_aliases
    PUT    /api/store/models/{name}/aliases/{alias}           move_alias {version | null, expected, by} -> the event
    GET    /api/store/models/{name}/aliases/history?alias=    alias_history
    GET    /api/store/runs/{id}/model-versions                versions_of_run
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Annotated, Any, Iterator

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import Field

from ..errors import AliasConflictError, ModelNotFoundError, PinConflictError
from ..store.model_records import AliasEvent, ModelVersionRecord, to_wire
from ..store.registry import model_registry
from .auth import LOCAL, Scope, audit, authorize, principal, visible_project
from .store_api import PREFIX
from .store_api_models import Int64, Name, Text, _Body
from .store_api_service import reply, run_project, service, store_errors

router = APIRouter(prefix=PREFIX, tags=["models"])
Version = Annotated[int, Field(ge=0, le=2**31 - 1)]


class RegisterIn(_Body):
    """A version to register: the checkpoint and its lineage (the server numbers and stamps it)."""

    project: Name
    checkpoint: Annotated[str, Field(min_length=1, max_length=4096)]
    run_id: Name | None = None
    step: Int64 | None = None
    manifest_hash: Text | None = None
    lineage: dict[Name, Any] = {}
    description: Text = ""
    tags: list[Name] = []
    registered_by: Text | None = None


class UpdateIn(_Body):
    description: Text | None = None
    tags: list[Name] | None = None


class RepinIn(_Body):
    """Re-pin the version from ``old_hash`` (its manifest hash now) to ``new_hash``."""

    old_hash: Annotated[str, Field(min_length=1, max_length=512)]
    new_hash: Annotated[str, Field(min_length=1, max_length=512)]
    by: Text | None = None
    why: Annotated[str, Field(max_length=512)] = "rekey"


class AliasIn(_Body):
    """Point the alias at ``version`` (null: remove it); with ``expected`` only if it names that now (0: nothing)."""

    version: Version | None
    expected: Version | None = None
    by: Text | None = None


def _registry(request: Request) -> Any:
    registry = model_registry(service(request).store)
    if registry is None:
        raise HTTPException(501, "this server's store keeps no model registry")
    return registry


@contextmanager
def _errors() -> Iterator[None]:
    try:
        with store_errors():
            yield
    except ModelNotFoundError as exc:
        raise HTTPException(404, str(exc)) from None


def _model_project(request: Request, name: str, scope: Scope) -> str:
    """Authorize ``scope`` on the model's project (404 for an unknown model); the project."""
    with _errors():
        project: str = _registry(request).get_model(name).project
    authorize(request, scope, project)
    return project


def _who(request: Request, claimed: str | None) -> str | None:
    """The token's user; the client's word only when the server checks no tokens."""
    who = principal(request)
    return claimed if who is LOCAL else who.user


@router.get("/models")
def list_models(request: Request, project: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """The models of ``project`` (or of the token's project; all when neither), by name."""
    with _errors():
        models = _registry(request).list_models(visible_project(request, project))
    return reply(request, [to_wire(model) for model in models])


@router.get("/models/{name}")
def get_model(request: Request, name: str) -> Response:
    """One model; 404 naming the models there are."""
    _model_project(request, name, "read")
    with _errors():
        return reply(request, to_wire(_registry(request).get_model(name)))


@router.post("/models/{name}/versions", status_code=201)
def register_version(request: Request, name: str, body: RegisterIn) -> Response:
    """Register the next version of ``name`` (the model is created in ``project`` when new)."""
    authorize(request, "write", body.project)
    if body.run_id is not None:
        run_project(request, body.run_id, "read")
    try:
        _model_project(request, name, "write")  # an existing model: the token must reach its project too
    except HTTPException as exc:
        if exc.status_code != 404:
            raise
    fields = body.model_dump(exclude={"project"})
    fields["tags"], fields["registered_by"] = tuple(body.tags), _who(request, body.registered_by)
    with _errors():
        record = _registry(request).register_version(
            ModelVersionRecord(name=name, version=0, registered_at=0.0, **fields), project=body.project)
    audit(request, "model.register", project=body.project, run_id=body.run_id, target=record.ref)
    return reply(request, to_wire(record), 201)


@router.get("/models/{name}/versions")
def list_versions(request: Request, name: str, include_deleted: bool = False) -> Response:
    """The model's versions, oldest first."""
    _model_project(request, name, "read")
    with _errors():
        versions = _registry(request).list_versions(name, include_deleted=include_deleted)
    return reply(request, [to_wire(version) for version in versions])


@router.get("/models/{name}/versions/{version}")
def get_version(request: Request, name: str, version: Version, include_deleted: bool = False) -> Response:
    """One version; 404 naming the versions there are."""
    _model_project(request, name, "read")
    with _errors():
        return reply(request, to_wire(_registry(request).get_version(name, version, include_deleted=include_deleted)))


@router.patch("/models/{name}/versions/{version}")
def update_version(request: Request, name: str, version: Version, body: UpdateIn) -> Response:
    """Replace a version's description and/or tags."""
    project = _model_project(request, name, "write")
    with _errors():
        record = _registry(request).update_version(name, version, description=body.description, tags=body.tags)
    audit(request, "model.update", project=project, target=record.ref)
    return reply(request, to_wire(record))


@router.post("/models/{name}/versions/{version}/repin")
def repin_version(request: Request, name: str, version: Version, body: RepinIn) -> Response:
    """Point a version at its checkpoint's new manifest hash, if it pins ``old_hash`` now."""
    project = _model_project(request, name, "write")
    with _errors():
        try:
            record = _registry(request).repin_version(name, version, old_hash=body.old_hash, new_hash=body.new_hash,
                                                      by=_who(request, body.by), why=body.why)
        except PinConflictError as exc:
            raise HTTPException(409, str(exc)) from None
    audit(request, "model.repin", project=project, target=record.ref)
    return reply(request, to_wire(record))


@router.delete("/models/{name}/versions/{version}")
def delete_version(request: Request, name: str, version: Version,
                   by: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """Soft-delete a version; the aliases naming it are removed."""
    project = _model_project(request, name, "write")
    with _errors():
        record = _registry(request).delete_version(name, version, by=_who(request, by))
    audit(request, "model.delete", project=project, target=record.ref)
    return reply(request, to_wire(record))


@router.get("/models/{name}/aliases")
def list_aliases(request: Request, name: str) -> Response:
    """Where the model's aliases point now."""
    _model_project(request, name, "read")
    with _errors():
        return reply(request, [to_wire(alias) for alias in _registry(request).list_aliases(name)])


@router.get("/models/{name}/aliases/history")
def alias_history(request: Request, name: str, alias: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    """Every move, removal and conflict of the model's aliases (or of ``alias``), oldest first."""
    _model_project(request, name, "read")
    with _errors():
        return reply(request, [to_wire(event) for event in _registry(request).alias_history(name, alias)])


@router.put("/models/{name}/aliases/{alias}")
def move_alias(request: Request, name: str, alias: str, body: AliasIn) -> Response:
    """Move or remove the alias (compare-and-set with ``expected``); the recorded event, a ``conflict`` included."""
    project = _model_project(request, name, "write")
    who = _who(request, body.by)
    try:
        with _errors():
            event = _registry(request).move_alias(name, alias, body.version, expected=body.expected, by=who)
    except AliasConflictError as exc:  # recorded; the reply says so and the client raises
        event = AliasEvent(name, alias, exc.current, exc.attempted, "conflict", time.time(), who, exc.expected)
    audit(request, "model.alias", project=project, target=f"{name}@{alias}",
          detail={"to": body.version, "expected": body.expected, "outcome": event.outcome})
    return reply(request, to_wire(event))


@router.get("/runs/{run_id}/model-versions")
def versions_of_run(request: Request, run_id: str) -> Response:
    """The live versions registered from the run's checkpoints."""
    run_project(request, run_id, "read")
    with _errors():
        return reply(request, [to_wire(version) for version in _registry(request).versions_of_run(run_id)])
