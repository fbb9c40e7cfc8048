"""Where runs are indexed: the :class:`Store` protocol and its backends."""

from .base import (
    Condition,
    MediaKey,
    MediaRecord,
    MediaStore,
    MetricSeries,
    MetricStats,
    RunQuery,
    RunRecord,
    RunStatus,
    Store,
    WriteBatch,
)
from .registry import open_store, register_backend

__all__ = [
    "Condition",
    "MediaKey",
    "MediaRecord",
    "MediaStore",
    "MetricSeries",
    "MetricStats",
    "RunQuery",
    "RunRecord",
    "RunStatus",
    "Store",
    "WriteBatch",
    "open_store",
    "register_backend",
]
