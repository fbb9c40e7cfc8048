"""Which fields of its config the demo acts on, and the refusal of every other setting.

The demo records its whole :class:`~runpoint.ProjectConfig`, so a field it recorded but
ignored would show in ``runpoint compare`` as if it had made a difference. Every field is
listed here: :data:`ACTS` (any valid value acts, or one of the listed values) or
:data:`FIXED` (the demo has no code for it, so only the demo's own value is accepted).
:func:`check_demo_config` raises a one-line :class:`~runpoint.ConfigError` for the first
setting the demo cannot honour.
"""

from __future__ import annotations

from typing import Any

from ..config.alerts import AlertsConfig
from ..config.normalize import flatten, to_plain
from ..errors import ConfigError, ConfigIssue

# field -> None when every valid value acts, else the values the demo's code handles
ACTS: dict[str, tuple[Any, ...] | None] = {
    "model.name": None,
    "model.type": ("mlp",),
    "model.input_size": (64, None),
    "model.output_size": (10, None),
    "model.hidden_sizes": None,
    "model.dropout_rate": None,
    "model.activation": None,
    "model.batch_norm": None,
    "training.batch_size": None,
    "training.learning_rate": None,
    "training.epochs": None,
    "training.max_steps": None,
    "training.optimizer": None,
    "training.momentum": None,  # sgd and rmsprop; the schema says so
    "training.weight_decay": None,
    "training.scheduler": ("none", "onecycle", "cosine", "linear"),
    "training.warmup_steps": None,
    "training.loss_function": ("cross_entropy",),
    "training.max_grad_norm": None,
    "training.seed": None,
    "training.checkpoint.save_steps": None,
    "training.checkpoint.keep_last": None,
    "training.checkpoint.keep_best": None,
    "training.checkpoint.monitor": ("val/loss", "val/acc", None),
    "training.checkpoint.mode": None,
    "training.checkpoint.keep_every_n_steps": None,
    "training.checkpoint.async_save": None,
    "data.dataset": ("sklearn-digits",),
    "data.val_fraction": None,
    "data.test_fraction": None,
    "data.eval_batch_size": None,
    "data.shuffle": None,
    "data.drop_last": None,
    "data.preprocessing.normalize": None,
    # rp.init takes these from the config
    "experiment.project": None,
    "experiment.name": None,
    "experiment.group": None,
    "experiment.tags": None,
    "experiment.notes": None,
    "experiment.root": None,
    "experiment.sinks": None,
    "experiment.log_system_metrics": None,
    "experiment.system_metrics_interval": None,
    "experiment.nan_guard": None,  # every run marks the first non-finite loss
    "experiment.preset": None,  # acts through the logging fields it fills
    "experiment.log_interval": None,
    "experiment.log_gradients": None,  # these four through run.watch
    "experiment.log_parameters": None,
    "experiment.log_histograms": None,
    "experiment.watch_interval": None,
    # read by `runpoint gc --policy`, not by the run: any valid value acts
    **{f"experiment.retention.{name}": None for name in ("older_than", "statuses", "keep_tags", "keep_last")},
    # the run's console capture and logged text read these
    **{f"experiment.redact.{name}": None for name in ("builtin", "emails", "patterns")},
    "experiment.console_segment_bytes": None,
    "optimization.deterministic": None,  # these three through apply_torch_settings
    "optimization.cudnn_benchmark": None,
    "optimization.matmul_precision": None,
}

# rp.init takes experiment.alerts from the config: every field of it acts
ACTS.update({f"experiment.alerts.{field}": None for field in flatten(to_plain(AlertsConfig()))})

# field -> why the demo cannot honour another value than its own
FIXED: dict[str, str] = {
    "model.architecture": "builds a plain MLP",
    "model.pretrained": "has no pretrained weights",
    "training.gradient_accumulation_steps": "takes one optimizer step per batch",
    "data.data_dir": "uses the digits that ship with scikit-learn",
    "data.train_path": "uses the digits that ship with scikit-learn",
    "data.val_path": "splits val_fraction off the digits",
    "data.test_path": "splits test_fraction off the digits",
    "data.num_workers": "loads its in-memory data in the training process",
    "data.pin_memory": "trains on the CPU",
    "data.preprocessing.mean": "scales the 8x8 digits by normalize alone",
    "data.preprocessing.std": "scales the 8x8 digits by normalize alone",
    "data.preprocessing.image_size": "trains on the 8x8 digits as they are",
    "experiment.log_images": "logs no images",
    "optimization.mixed_precision": "trains in float32 on the CPU",
    "optimization.compile": "does not compile the model",
    "optimization.compile_mode": "does not compile the model",
    "optimization.gradient_checkpointing": "keeps every activation (the model is tiny)",
    "optimization.profile": "has no profiler",
    "optimization.profile_steps": "has no profiler",
}
FIXED.update({
    f"data.augmentation.{name}": "has no augmentation"
    for name in ("enabled", "horizontal_flip", "random_crop_padding", "rotation_degrees", "color_jitter",
                 "noise_std", "mixup_alpha")
})
FIXED.update({
    f"deployment.{name}": "trains only; it does not deploy"
    for name in ("export_format", "device", "host", "port", "batch_size", "workers", "api_key")
})


def check_demo_config(config: Any, defaults: Any) -> None:
    """Raise :class:`~runpoint.ConfigError` naming the first field the demo would record but ignore.

    ``defaults`` is the demo's own config (a model or a mapping); a :data:`FIXED` field is
    accepted only at its value there.
    """
    own = flatten(to_plain(defaults))
    for field, value in flatten(to_plain(config)).items():
        if field in ACTS:
            allowed = ACTS[field]
            if allowed is None or value in allowed:
                continue
            shown = ", ".join("null" if choice is None else str(choice) for choice in allowed)
            message = f"the demo supports {shown}"
        elif field in FIXED:
            if value == own.get(field):
                continue
            message = f"the demo {FIXED[field]}; leave it at {_shown(own.get(field))}"
        else:
            message = "the demo has no use for this field; drop it"
        raise ConfigError(ConfigIssue(field, message, value=_shown(value)))


def _shown(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
