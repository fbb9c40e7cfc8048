"""The embedded store: one SQLite database (WAL) per root, metric points packed in chunks."""

from .store import SQLiteStore

__all__ = ["SQLiteStore"]
