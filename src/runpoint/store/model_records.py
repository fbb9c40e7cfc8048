"""The value objects of the model registry: models, versions with lineage, aliases and their moves.

A model is a name in a project. Each registration adds a version (1, 2, ...) that points
at one saved checkpoint and records where it came from (:attr:`ModelVersionRecord.lineage`).
Aliases such as ``champion`` name one version each; every attempt to move one, won or
lost, is an :class:`AliasEvent`. The protocol that stores them is
:class:`runpoint.store.base.ModelRegistry`.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Literal, Mapping

from ..errors import AliasConflictError, InvalidArgumentError

AliasOutcome = Literal["moved", "conflict", "removed"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
NAME_RULE = "letters, digits, '.', '_' or '-', starting with a letter or digit, at most 128"


@dataclass(frozen=True)
class ModelRecord:
    """A registered model's name and who made it. Times are Unix seconds."""

    name: str
    project: str
    created_at: float
    description: str = ""
    created_by: str | None = None


@dataclass(frozen=True)
class ModelVersionRecord:
    """One version of a model: which checkpoint it is, and its lineage.

    ``version`` is 0 until the registry numbers it. ``run_id`` and ``step`` name the run
    and checkpoint it came from (None for a checkpoint registered by path); ``checkpoint``
    is where that checkpoint lives (a directory or URL) and ``manifest_hash`` the digest of
    its manifest when it was registered, so a later change to the files is detected.
    ``lineage`` holds the rest as JSON-able values: ``config_hash``, ``git_commit``,
    ``git_dirty``, ``metric``, ``metric_value``, ``summary``.
    """

    name: str
    version: int
    checkpoint: str
    registered_at: float
    run_id: str | None = None
    step: int | None = None
    manifest_hash: str | None = None
    lineage: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    tags: tuple[str, ...] = ()
    registered_by: str | None = None
    deleted_at: float | None = None

    @property
    def ref(self) -> str:
        """``name:version``, as ``rp.load_model`` and ``runpoint models show`` take it."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class AliasRecord:
    """Where an alias points now."""

    name: str
    alias: str
    version: int
    moved_at: float
    moved_by: str | None = None


@dataclass(frozen=True)
class AliasEvent:
    """One attempt to move an alias: ``moved``, ``removed``, or ``conflict`` (lost a race).

    ``expected`` is the version the mover believed the alias named, when it said so; a
    ``conflict`` keeps the attempt (``to_version``) and what the alias named instead
    (``from_version``).
    """

    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    outcome: AliasOutcome
    at: float
    by: str | None = None
    expected: int | None = None
    id: int = 0


def check_model_name(name: object) -> str:
    """``name`` if it is a valid model name, else :class:`InvalidArgumentError` saying the rule."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgumentError("name", f"a model name is {NAME_RULE}; got {name!r:.80}")
    return name


def check_alias(alias: object) -> str:
    """``alias`` if it is a valid alias (a name that is not a number, so ``m@3`` never means version 3)."""
    if not isinstance(alias, str) or not _NAME.match(alias) or alias.isdigit():
        raise InvalidArgumentError("alias", f"an alias is {NAME_RULE}, and not a number; got {alias!r:.80}")
    return alias


def check_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**31:
        raise InvalidArgumentError("version", f"a version is a whole number from 1; got {version!r:.80}")
    return version


def check_tags(tags: Iterable[str]) -> tuple[str, ...]:
    listed = list(tags) if not isinstance(tags, str) else None
    if listed is None or not all(isinstance(tag, str) and 0 < len(tag) <= 256 for tag in listed):
        raise InvalidArgumentError("tags", f"tags are a list of non-empty strings (at most 256 characters); got {tags!r:.80}")
    return tuple(dict.fromkeys(listed))


# -- rows (SQLite and PostgreSQL name their columns alike) and the wire (dicts) -----------

def model_from_row(row: Mapping[str, Any]) -> ModelRecord:
    return ModelRecord(name=row["name"], project=row["project"], created_at=row["created_at"],
                       description=row["description"], created_by=row["created_by"])


def version_from_row(row: Mapping[str, Any]) -> ModelVersionRecord:
    return ModelVersionRecord(
        name=row["name"], version=row["version"], checkpoint=row["checkpoint"],
        registered_at=row["registered_at"], run_id=row["run_id"], step=row["step"],
        manifest_hash=row["manifest_hash"], lineage=json.loads(row["lineage"]),
        description=row["description"], tags=tuple(json.loads(row["tags"])),
        registered_by=row["registered_by"], deleted_at=row["deleted_at"],
    )


def alias_from_row(row: Mapping[str, Any]) -> AliasRecord:
    return AliasRecord(name=row["name"], alias=row["alias"], version=row["version"], moved_at=row["moved_at"],
                       moved_by=row["moved_by"])


def event_from_row(row: Mapping[str, Any]) -> AliasEvent:
    return AliasEvent(name=row["name"], alias=row["alias"], from_version=row["from_version"],
                      to_version=row["to_version"], outcome=row["outcome"], at=row["at"], by=row["by"],
                      expected=row["expected"], id=row["id"])


def to_wire(record: ModelRecord | ModelVersionRecord | AliasRecord | AliasEvent) -> dict[str, Any]:
    """A record as a JSON-able dict (tags as a list)."""
    out = asdict(record)
    if isinstance(record, ModelVersionRecord):
        out["tags"] = list(record.tags)
    return out


def version_from_wire(value: Mapping[str, Any]) -> ModelVersionRecord:
    return ModelVersionRecord(**{**value, "tags": tuple(value.get("tags") or ())})


def raise_on_conflict(event: AliasEvent) -> AliasEvent:
    """``event``, or AliasConflictError when it records a lost compare-and-set (raise it after the commit)."""
    if event.outcome == "conflict":
        raise AliasConflictError(event.name, event.alias, event.expected, event.from_version, event.to_version)
    return event
