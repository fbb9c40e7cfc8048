"""Named presets for the experiment section: what to log, and how often.

A preset fills in the experiment fields a config leaves unset; a value written anywhere
(file, profile, environment, override) always wins over the preset's::

    experiment:
      preset: numerical-stability   # gradients, histograms, NaN guard, every 10 steps
      log_histograms: false         # ...but no histograms

``basic``
    Scalars every 10 steps and system metrics; nothing that costs time per step.
``full``
    Everything: every step, gradients, parameters, histograms, images, system metrics.
``numerical-stability``
    For runs that diverge: every step, gradient and parameter norms every 10 steps,
    histograms, and the NaN/Inf guard.

Example::

    from runpoint.config.presets import experiment_preset
    experiment = experiment_preset("full", project="digits")
"""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .schema import ExperimentConfig

EXPERIMENT_PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "basic": MappingProxyType({
        "log_interval": 10,
        "log_gradients": False,
        "log_parameters": False,
        "log_histograms": False,
        "log_images": False,
        "log_system_metrics": True,
        "nan_guard": False,
    }),
    "full": MappingProxyType({
        "log_interval": 1,
        "log_gradients": True,
        "log_parameters": True,
        "log_histograms": True,
        "log_images": True,
        "log_system_metrics": True,
        "watch_interval": 100,
        "nan_guard": True,
    }),
    "numerical-stability": MappingProxyType({
        "log_interval": 1,
        "log_gradients": True,
        "log_parameters": True,
        "log_histograms": True,
        "log_images": False,
        "log_system_metrics": True,
        "watch_interval": 10,
        "nan_guard": True,
    }),
})

PRESET_DESCRIPTIONS: Mapping[str, str] = MappingProxyType({
    "basic": "scalars every 10 steps and system metrics; nothing that costs time per step",
    "full": "everything, every step: gradients, parameters, histograms, images, system metrics",
    "numerical-stability": "gradient and parameter norms every 10 steps, histograms and the NaN/Inf guard",
})


def apply_preset(values: Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """``values`` with the fields of its ``preset`` filled in where ``values`` leaves them unset.

    An unknown preset name is left for validation to report.
    """
    name = values.get("preset")
    chosen = presets.get(name) if isinstance(name, str) else None
    if chosen is None:
        return dict(values)
    return {**chosen, **values}


def experiment_preset(name: str, **fields: Any) -> "ExperimentConfig":
    """An :class:`~runpoint.config.schema.ExperimentConfig` from preset ``name``, with ``fields`` on top."""
    from .schema import ExperimentConfig

    return ExperimentConfig.model_validate({**fields, "preset": name})
