"""``rp.ProjectConfig``: the six-section schema of a training config.

Every field has a default, a description and its constraints, so that a config fails at
load time with a message naming the field, and so that the JSON schema
(``ProjectConfig.model_json_schema()``) is enough to draw a form. Sections forbid
unknown keys and validate assignments too (``cfg.training.learning_rate = -1`` raises).

Extend it by subclassing a section and the root, or compose your own pydantic model:
:func:`runpoint.load_config` works with any model.

The optimization and deployment sections are defined in ``_sections_runtime`` and the shared
field types in ``_section_types``; import every section from here.

Example::

    import runpoint as rp

    cfg = rp.load_config("configs/base.yaml", profile="dev")
    cfg.training.learning_rate          # 0.003
    cfg.training.checkpoint.manager_kwargs()
    # {'keep_last': 3, 'keep_best': 1, 'monitor': 'val/loss', 'mode': 'min', 'save_every_n_steps': 500, ...}

    class MyModel(rp.config.schema.ModelConfig):
        num_heads: int = 4

    class MyConfig(rp.ProjectConfig):
        model: MyModel = MyModel()
"""

from __future__ import annotations

import os
from typing import Annotated, Any, ClassVar, Literal, Mapping

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    field_validator,
    model_validator,
)

from ._console_section import (
    DEFAULT_CONSOLE_SEGMENT_BYTES,
    RedactConfig,
    console_segment_field,
)
from ._retention import RetentionPolicy
from ._section_types import SECTION, Fraction, Identifier, PositiveInt, Probability
from ._sections_runtime import DeploymentConfig, OptimizationConfig
from ._sinks import SinkEntry, sinks_json_schema
from .alerts import AlertsConfig
from .presets import EXPERIMENT_PRESETS, apply_preset

__all__ = [
    "DEFAULT_CONSOLE_SEGMENT_BYTES",
    "AugmentationConfig",
    "CheckpointPolicy",
    "DataConfig",
    "DeploymentConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimizationConfig",
    "PreprocessingConfig",
    "ProjectConfig",
    "RetentionPolicy",
    "RedactConfig",
    "TrainingConfig",
]


class ModelConfig(BaseModel):
    """The network: its family, its shape and where its weights start."""

    model_config = SECTION

    name: str = Field(default="model", min_length=1, description="A readable name for the model, e.g. 'digits-mlp'.")
    type: Literal["mlp", "cnn", "rnn", "lstm", "transformer", "custom"] = Field(
        default="mlp", description="The model family."
    )
    architecture: str | None = Field(
        default=None,
        description="A specific architecture of the family, e.g. 'resnet18'; null for a plain stack of layers."
    )
    input_size: PositiveInt | None = Field(
        default=None, description="Features per input example (64 for 8x8 digits); null infers it from the data."
    )
    output_size: PositiveInt | None = Field(
        default=None, description="Outputs per example (classes, regression targets); null infers it from the data."
    )
    hidden_sizes: list[PositiveInt] = Field(
        default_factory=lambda: [128, 64], description="Width of each hidden layer, input side first."
    )
    dropout_rate: Fraction = Field(default=0.0, description="Dropout probability after each hidden layer.")
    activation: Literal["relu", "gelu", "silu", "tanh", "sigmoid", "leaky_relu", "elu"] = Field(
        default="relu", description="Activation function between layers."
    )
    batch_norm: bool = Field(default=False, description="Batch normalisation after each hidden layer.")
    pretrained: bool = Field(
        default=False, description="Start from the architecture's pretrained weights instead of random ones."
    )


class CheckpointPolicy(BaseModel):
    """When to save checkpoints and which to keep; manager_kwargs() gives rp.CheckpointManager's keywords."""

    model_config = SECTION

    save_steps: PositiveInt | None = Field(
        default=None,
        description="Save at steps 0, N, 2N, ... (should_save; the manager's save_every_n_steps); "
        "null saves only when your code calls save()."
    )
    keep_last: PositiveInt | None = Field(
        default=3, description="Keep the newest N checkpoints; null keeps all of them."
    )
    keep_best: PositiveInt | None = Field(
        default=None, description="Also keep the best N checkpoints by `monitor`; null keeps no extra best ones."
    )
    monitor: str | None = Field(
        default=None, min_length=1, description="Metric that ranks checkpoints for keep_best, e.g. 'val/loss'."
    )
    mode: Literal["min", "max"] = Field(
        default="min", description="Whether a lower ('min') or higher ('max') monitor is better."
    )
    keep_every_n_steps: PositiveInt | None = Field(
        default=None, description="Never delete checkpoints whose step is a multiple of N (a sparse permanent history)."
    )
    async_save: bool = Field(
        default=False,
        description="Write checkpoints on a background thread; training only waits for the copy to host memory."
    )

    @model_validator(mode="after")
    def _best_needs_monitor(self) -> "CheckpointPolicy":
        if self.keep_best is not None and self.monitor is None:
            raise ValueError(
                f"keep_best={self.keep_best} needs monitor, the metric to rank checkpoints by (e.g. 'val/loss')"
            )
        return self

    def manager_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``rp.CheckpointManager(run, **policy.manager_kwargs())``."""
        return {
            "keep_last": self.keep_last,
            "keep_best": self.keep_best,
            "monitor": self.monitor,
            "mode": self.mode,
            "keep_every_n_steps": self.keep_every_n_steps,
            "save_every_n_steps": self.save_steps,
            "async_save": self.async_save,
        }

    def should_save(self, step: int) -> bool:
        """True when ``step`` is a multiple of ``save_steps`` (0, N, 2N, ...), as the manager answers.

        Raises :class:`~runpoint.InvalidArgumentError` when ``save_steps`` is null, like a
        manager without a trigger: no step would ever be due.
        """
        from .._util.schedule import step_is_due

        return step_is_due(step, self.save_steps)


class TrainingConfig(BaseModel):
    """How to train: batch, optimiser, schedule, length, seed and checkpoints."""

    model_config = SECTION

    batch_size: PositiveInt = Field(
        default=32, description="Examples per optimizer step (per device, before accumulation)."
    )
    learning_rate: float = Field(default=1e-3, gt=0, description="Peak learning rate.")
    epochs: PositiveInt | None = Field(
        default=10, description="Passes over the training data; null when max_steps bounds training."
    )
    max_steps: PositiveInt | None = Field(
        default=None,
        description="Stop after this many optimizer steps, even before the epochs are done; null: no step limit."
    )
    optimizer: Literal["adamw", "adam", "sgd", "rmsprop", "adagrad"] = Field(default="adamw", description="Optimizer.")
    momentum: Fraction = Field(default=0.9, description="Momentum for sgd and rmsprop.")
    weight_decay: float = Field(default=0.0, ge=0, description="Weight decay (L2 penalty; decoupled for adamw).")
    scheduler: Literal["none", "cosine", "linear", "step", "exponential", "onecycle", "plateau"] = Field(
        default="none", description="Learning-rate schedule; 'none' keeps it constant."
    )
    warmup_steps: int = Field(default=0, ge=0, description="Steps of linear warm-up from 0 to learning_rate.")
    loss_function: Literal["cross_entropy", "mse", "l1", "smooth_l1", "huber", "bce", "bce_with_logits", "nll"] = Field(
        default="cross_entropy", description="Training loss."
    )
    gradient_accumulation_steps: PositiveInt = Field(
        default=1, description="Micro-batches whose gradients add up to one step."
    )
    max_grad_norm: float | None = Field(
        default=None, gt=0, description="Clip the global gradient norm to this value; null: no clipping."
    )
    seed: int = Field(
        default=0, ge=0, le=2**32 - 1, description="Seed of every random generator (python, numpy, torch)."
    )
    checkpoint: CheckpointPolicy = Field(default_factory=CheckpointPolicy, description="Checkpoint policy.")

    @model_validator(mode="after")
    def _has_a_length(self) -> "TrainingConfig":
        if self.epochs is None and self.max_steps is None:
            raise ValueError("epochs and max_steps are both null: set at least one, or training never ends")
        return self


class PreprocessingConfig(BaseModel):
    """Deterministic transforms applied to every example."""

    model_config = SECTION

    normalize: bool = Field(default=True, description="Normalise inputs, with mean/std when given, else to [0, 1].")
    mean: list[float] | None = Field(
        default=None, description="Per-channel mean to subtract; null: computed or not used."
    )
    std: list[Annotated[float, Field(gt=0)]] | None = Field(
        default=None, description="Per-channel standard deviation to divide by."
    )
    image_size: PositiveInt | None = Field(
        default=None, description="Resize images to this many pixels a side; null keeps them."
    )

    @model_validator(mode="after")
    def _mean_std_match(self) -> "PreprocessingConfig":
        if self.mean is not None and self.std is not None and len(self.mean) != len(self.std):
            raise ValueError(f"mean has {len(self.mean)} values but std has {len(self.std)}: give one per channel")
        return self


class AugmentationConfig(BaseModel):
    """Random transforms applied to training examples only."""

    model_config = SECTION

    enabled: bool = Field(default=False, description="Apply the augmentations below to training batches.")
    horizontal_flip: Probability = Field(default=0.0, description="Probability of a horizontal flip.")
    random_crop_padding: int = Field(
        default=0, ge=0, description="Pad by this many pixels, then crop back at a random offset."
    )
    rotation_degrees: float = Field(
        default=0.0, ge=0, le=180, description="Rotate by a random angle up to this many degrees."
    )
    color_jitter: Probability = Field(default=0.0, description="Strength of brightness/contrast/saturation jitter.")
    noise_std: float = Field(default=0.0, ge=0, description="Standard deviation of Gaussian noise added to inputs.")
    mixup_alpha: float = Field(default=0.0, ge=0, description="Alpha of mixup's Beta distribution; 0 turns mixup off.")


class DataConfig(BaseModel):
    """Where the data comes from, how it is split, batched and prepared."""

    model_config = SECTION

    dataset: str = Field(
        default="sklearn-digits", min_length=1, description="Dataset name, e.g. 'sklearn-digits' or 'cifar10'."
    )
    data_dir: str | None = Field(
        default=None, description="Directory holding the data; '${env:DATA_DIR}' reads it from the environment."
    )
    train_path: str | None = Field(default=None, description="Training data file or folder, relative to data_dir.")
    val_path: str | None = Field(
        default=None, description="Validation data; null splits val_fraction off the training data."
    )
    test_path: str | None = Field(
        default=None, description="Test data; null splits test_fraction off the training data."
    )
    val_fraction: Fraction = Field(default=0.2, description="Share of training data held out for validation.")
    test_fraction: Fraction = Field(default=0.0, description="Share of training data held out for testing.")
    eval_batch_size: PositiveInt | None = Field(
        default=None, description="Batch size for validation and test; null uses training.batch_size."
    )
    num_workers: int = Field(
        default=0, ge=0, description="Data-loading worker processes; 0 loads in the training process."
    )
    pin_memory: bool = Field(default=False, description="Pin host memory of batches, for faster copies to the GPU.")
    shuffle: bool = Field(default=True, description="Shuffle training data every epoch.")
    drop_last: bool = Field(default=False, description="Drop the last incomplete training batch of each epoch.")
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig, description="Preprocessing.")
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig, description="Augmentation.")

    @model_validator(mode="after")
    def _splits_leave_training_data(self) -> "DataConfig":
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction {self.val_fraction} + test_fraction {self.test_fraction} leave no training data; "
                "keep the sum below 1"
            )
        return self


class ExperimentConfig(BaseModel):
    """Where the run is recorded and what gets logged; a preset fills the logging fields left unset."""

    model_config = SECTION
    __presets__: ClassVar[Mapping[str, Mapping[str, Any]]] = EXPERIMENT_PRESETS

    project: Identifier | None = Field(
        default=None, description="Project the runs are recorded under; rp.init uses it when no project is passed."
    )
    name: str | None = Field(
        default=None, min_length=1, description="Run name; null makes one up like 'swift-heron-7'."
    )
    group: str | None = Field(default=None, min_length=1, description="Groups the runs of one sweep or study.")
    tags: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, description="Labels to filter runs by."
    )
    notes: str = Field(default="", description="Free-form notes stored with the run.")
    root: str | None = Field(default=None, description="Where runs are stored; null: $RUNPOINT_ROOT, else ./runpoint.")
    sinks: list[SinkEntry] = Field(
        default_factory=list,
        description="Other trackers to mirror the run to: names, or {name: {option: value}} "
        "(e.g. {mlflow: {tracking_uri: 'sqlite:///mlflow.db'}}).",
        json_schema_extra=sinks_json_schema,
    )
    preset: Literal["basic", "full", "numerical-stability"] | None = Field(
        default=None, description="Logging preset filling the fields below that the config leaves unset."
    )
    log_interval: PositiveInt = Field(default=10, description="Log training metrics every N steps.")
    log_gradients: bool = Field(default=False, description="Log global and per-layer gradient norms.")
    log_parameters: bool = Field(default=False, description="Log parameter norms and update ratios.")
    log_histograms: bool = Field(default=False, description="Log histograms of weights and gradients.")
    log_images: bool = Field(default=False, description="Log sample inputs and predictions as images.")
    log_system_metrics: bool = Field(
        default=True, description="Sample CPU, memory, disk, network and GPU use in the background."
    )
    system_metrics_interval: float = Field(
        default=10.0, ge=0.05, le=3600, description="Seconds between system-metric samples."
    )
    watch_interval: PositiveInt = Field(
        default=100, description="Steps between gradient, parameter and histogram logs."
    )
    nan_guard: bool = Field(default=False, description="Mark the step where the loss first becomes NaN or infinite.")
    retention: RetentionPolicy = Field(default_factory=RetentionPolicy, description=RetentionPolicy.__doc__)
    redact: RedactConfig = Field(default_factory=RedactConfig, description=RedactConfig.__doc__)
    console_segment_bytes: int = console_segment_field()
    alerts: AlertsConfig = Field(default_factory=AlertsConfig, description=AlertsConfig.__doc__)

    @model_validator(mode="wrap")
    @classmethod
    def _fill_from_preset(cls, data: Any, handler: ModelWrapValidatorHandler["ExperimentConfig"]) -> "ExperimentConfig":
        if not isinstance(data, Mapping):
            return handler(data)
        filled = apply_preset(data, cls.__presets__)
        section = handler(filled)
        # what the preset filled counts as unset: changing the preset later changes those fields too
        section.__pydantic_fields_set__.difference_update(set(filled) - set(data))
        return section

    @field_validator("root", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("sinks", mode="before")
    @classmethod
    def _sinks_as_list(cls, value: Any) -> Any:
        # {mlflow: {tracking_uri: ...}, tensorboard: null}: one entry per sink
        if isinstance(value, Mapping):
            return [{name: options} for name, options in value.items()]
        return value

    @field_validator("sinks", "tags")
    @classmethod
    def _no_duplicates(cls, values: list[Any]) -> list[Any]:
        names = [next(iter(value)) if isinstance(value, dict) else value for value in values]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once")
        return values


class ProjectConfig(BaseModel):
    """A training project's config: model, training, data, experiment, optimization, deployment.

    Load one with :func:`runpoint.load_config`; every section has defaults, so
    ``ProjectConfig()`` is valid on its own.

    Example::

        cfg = rp.load_config("configs/base.yaml", profile="prod", overrides=["training.learning_rate=3e-4"])
        with rp.init(config=cfg) as run:        # project, name, tags... from cfg.experiment
            ...
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, title="ProjectConfig")

    model: ModelConfig = Field(default_factory=ModelConfig, description=ModelConfig.__doc__)
    training: TrainingConfig = Field(default_factory=TrainingConfig, description=TrainingConfig.__doc__)
    data: DataConfig = Field(default_factory=DataConfig, description=DataConfig.__doc__)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig, description=ExperimentConfig.__doc__)
    optimization: OptimizationConfig = Field(default_factory=OptimizationConfig, description=OptimizationConfig.__doc__)
    deployment: DeploymentConfig = Field(default_factory=DeploymentConfig, description=DeploymentConfig.__doc__)
