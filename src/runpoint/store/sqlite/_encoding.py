"""How values are encoded in the store's JSON and numeric columns (one rule for writes and filters)."""

from __future__ import annotations

from ..encoding import as_number, to_json

__all__ = ["as_number", "to_json"]
