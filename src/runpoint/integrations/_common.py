"""What the integrations share: adding params to a running run, splitting logged values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..config import flatten, mask_secrets, to_plain

if TYPE_CHECKING:
    from ..handle import RunHandle


def add_params(run: "RunHandle", config: Any) -> None:
    """Merge ``config`` (dict, Namespace, dataclass...) into a running run's params and config.

    The params are stored (searchable, shown by ``show`` and ``compare``) and mirrored
    to the run's sinks, and ``config.yaml`` is rewritten with the merged config. The
    run's config hash stays the one it started with.
    """
    from ..run.start import _write_config

    plain = mask_secrets(to_plain(config))
    if not plain:
        return
    _deep_update(run.config, plain)
    run.add_params(flatten(plain))
    _write_config(run.dir / "config.yaml", run.id, run.config)


def _deep_update(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _deep_update(target[key], value)
        else:
            target[key] = value


def split_values(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(metrics, others)``: numbers and scalar tensors, and everything else (strings...)."""
    metrics: dict[str, Any] = {}
    others: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics[key] = value
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:
            metrics[key] = value  # numpy scalars and 0-d tensors: run.log converts them
        elif hasattr(value, "numel") and callable(value.numel) and value.numel() == 1:
            metrics[key] = value.reshape(())
        else:
            others[key] = value
    return metrics, others

