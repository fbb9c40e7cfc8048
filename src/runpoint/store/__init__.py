"""Where runs are indexed: the :class:`Store` protocol and its backends."""

from .base import CheckpointRegistry, MediaStore, ModelRegistry, Store
from .model_records import AliasEvent, AliasRecord, ModelRecord, ModelVersionRecord
from .records import (
    CheckpointRecord,
    Condition,
    MediaKey,
    MediaRecord,
    MetricSeries,
    MetricStats,
    RankRecord,
    RunQuery,
    RunRecord,
    RunStatus,
    WriteBatch,
)
from .registry import (
    checkpoint_registry,
    model_registry,
    open_store,
    register_backend,
    registered_steps,
)

__all__ = [
    "AliasEvent",
    "AliasRecord",
    "CheckpointRecord",
    "CheckpointRegistry",
    "Condition",
    "MediaKey",
    "MediaRecord",
    "MediaStore",
    "MetricSeries",
    "MetricStats",
    "ModelRecord",
    "ModelRegistry",
    "ModelVersionRecord",
    "RankRecord",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "Store",
    "WriteBatch",
    "checkpoint_registry",
    "model_registry",
    "open_store",
    "register_backend",
    "registered_steps",
]
