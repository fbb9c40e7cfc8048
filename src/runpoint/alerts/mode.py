"""The direction a detector watches a metric in: the configured mode, or the one its name implies."""

from __future__ import annotations

from .._util.metric_mode import Mode, infer_mode

__all__ = ["Mode", "infer_mode", "mode_for"]


def mode_for(key: str, configured: str) -> Mode | None:
    """The configured mode, or the inferred one for ``"auto"``."""
    if configured == "min" or configured == "max":
        return configured  # type: ignore[return-value]
    return infer_mode(key)
