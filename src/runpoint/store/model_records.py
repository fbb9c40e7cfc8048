"""The value objects of the model registry: models, versions with lineage, aliases and their moves.

A model is a name in a project. Each registration adds a version (1, 2, ...) that points
at one saved checkpoint and records where it came from (:attr:`ModelVersionRecord.lineage`).
Aliases such as ``champion`` name one version each; every attempt to move one, won or
lost, is an :class:`AliasEvent`. The protocol that stores them is
:class:`runpoint.store.base.ModelRegistry`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AliasOutcome = Literal["moved", "conflict", "removed"]


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
