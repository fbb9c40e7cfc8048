"""Where runs are indexed: the :class:`Store` protocol and its backends."""

from .base import AlertStore, CheckpointRegistry, MediaStore, Store
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
from .registry import alert_store, checkpoint_registry, open_store, register_backend

__all__ = [
    "AlertRecord",
    "AlertStore",
    "CheckpointRecord",
    "CheckpointRegistry",
    "Condition",
    "MediaKey",
    "MediaRecord",
    "MediaStore",
    "MetricSeries",
    "MetricStats",
    "RankRecord",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "Store",
    "WriteBatch",
    "alert_store",
    "checkpoint_registry",
    "open_store",
    "register_backend",
]
