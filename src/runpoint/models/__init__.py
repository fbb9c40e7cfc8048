"""The model registry: named models whose versions point at verified checkpoints, with lineage and aliases.

The Python API (also ``rp.register_model`` / ``rp.load_model`` / ``rp.model_version``)::

    v = rp.register_model("digits", run, alias="champion")      # -> ModelVersionRecord (v.ref == "digits:1")
    rp.load_model("digits@champion", {"model": model})           # verified, into the model
    rp.model_version("digits:1").lineage["git_commit"]

The registry itself (listing, aliases as compare-and-set, history, edits) is the store's
:class:`~runpoint.store.base.ModelRegistry`: ``open_registry(root)`` returns it with its
store. :mod:`runpoint.models.runs` answers what a run's deletion would take.
"""

from ..store.model_records import (
    AliasEvent,
    AliasRecord,
    ModelRecord,
    ModelVersionRecord,
)
from .load import load_model, model_version
from .refs import ModelRef, parse_model_ref, parse_source
from .register import register_model
from .resolve import (
    aliases_by_version,
    as_dict,
    checkpoint_location,
    describe,
    open_registry,
    registry_of,
    resolve_version,
)

ModelVersion = ModelVersionRecord

__all__ = [
    "AliasEvent",
    "AliasRecord",
    "ModelRecord",
    "ModelRef",
    "ModelVersion",
    "ModelVersionRecord",
    "aliases_by_version",
    "as_dict",
    "checkpoint_location",
    "describe",
    "load_model",
    "model_version",
    "open_registry",
    "parse_model_ref",
    "parse_source",
    "register_model",
    "registry_of",
    "resolve_version",
]
