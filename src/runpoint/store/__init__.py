"""Where runs are indexed: the :class:`Store` protocol and its backends."""

from .base import CheckpointRegistry, MediaStore, Store
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
from .registry import checkpoint_registry, open_store, register_backend

__all__ = [
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
    "checkpoint_registry",
    "open_store",
    "register_backend",
]
