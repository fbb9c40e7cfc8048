"""Where runs are indexed: the :class:`Store` protocol and its backends."""

from .base import AlertStore, CheckpointRegistry, MediaStore, ModelRegistry, Store
from .model_records import AliasEvent, AliasRecord, ModelRecord, ModelVersionRecord
from .records import (
    AlertRecord,
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
    alert_store,
    checkpoint_registry,
    model_registry,
    open_store,
    register_backend,
    registered_steps,
)

__all__ = [
    "AlertRecord",
    "AlertStore",
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
    "alert_store",
    "checkpoint_registry",
    "model_registry",
    "open_store",
    "register_backend",
    "registered_steps",
]
