"""ProjectConfig: the fields others rely on, the rules between them, and a JSON schema clean enough for a form."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

import runpoint as rp
from runpoint.config.presets import EXPERIMENT_PRESETS, PRESET_DESCRIPTIONS
from runpoint.config.schema import (
    CheckpointPolicy,
    ExperimentConfig,
    OptimizationConfig,
)


def _properties(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, model in {"ProjectConfig": schema, **schema.get("$defs", {})}.items():
        for field, spec in model.get("properties", {}).items():
            found.append((f"{name}.{field}", spec))
    return found


def test_the_json_schema_describes_every_field_with_its_constraints() -> None:
    schema = rp.ProjectConfig.model_json_schema()
    properties = dict(_properties(schema))
    assert len(properties) > 80

    def described(spec: dict[str, Any]) -> bool:  # a section's description lives on its $defs entry
        target = spec.get("$ref", "").rsplit("/", 1)[-1]
        return bool(spec.get("description") or schema["$defs"].get(target, {}).get("description"))

    assert [name for name, spec in properties.items() if not described(spec)] == []
    assert properties["TrainingConfig.learning_rate"]["exclusiveMinimum"] == 0
    assert properties["ModelConfig.dropout_rate"]["exclusiveMaximum"] == 1.0
    assert properties["ModelConfig.activation"]["enum"][0] == "relu"
    assert properties["DeploymentConfig.port"]["maximum"] == 65535
    assert properties["DeploymentConfig.api_key"]["anyOf"][0] == {"format": "password", "type": "string", "writeOnly": True}
    sink_list, sink_mapping = properties["ExperimentConfig.sinks"]["anyOf"]  # [name | {name: options}] or {name: options}
    assert sink_list["items"]["anyOf"][0]["enum"] == ["tensorboard", "mlflow", "wandb"]
    assert sink_mapping["propertyNames"]["enum"] == ["tensorboard", "mlflow", "wandb"]
    assert all(model.get("additionalProperties") is False for model in schema["$defs"].values())


def test_the_experiment_fields_other_parts_rely_on() -> None:
    fields = set(ExperimentConfig.model_fields)
    assert {"project", "name", "tags", "notes", "root", "sinks", "log_interval", "group", "preset"} <= fields
    assert {"log_gradients", "log_histograms", "log_images", "log_system_metrics"} <= fields


def test_the_checkpoint_policy_maps_onto_checkpoint_manager_keywords() -> None:
    policy = CheckpointPolicy(keep_last=2, keep_best=1, monitor="val/acc", mode="max", keep_every_n_steps=1000,
                              save_steps=250)
    assert policy.manager_kwargs() == {
        "keep_last": 2, "keep_best": 1, "monitor": "val/acc", "mode": "max", "keep_every_n_steps": 1000,
        "save_every_n_steps": 250, "async_save": False,
    }
    assert [step for step in range(0, 1001, 50) if policy.should_save(step)] == [0, 250, 500, 750, 1000]


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("training", {"checkpoint": {"keep_best": 1}}, "keep_best=1 needs monitor"),
        ("training", {"epochs": None}, "epochs and max_steps are both null"),
        ("optimization", {"deterministic": True, "cudnn_benchmark": True}, "deterministic and cudnn_benchmark"),
        ("data", {"preprocessing": {"mean": [0.5], "std": [0.2, 0.2]}}, "mean has 1 values but std has 2"),
        ("data", {"val_fraction": 0.5, "test_fraction": 0.5}, "leave no training data"),
        ("experiment", {"tags": ["a", "a"]}, "'a' listed more than once"),
        ("experiment", {"project": "has space"}, "should match pattern"),
        ("deployment", {"device": "gpu"}, "should match pattern"),
        ("model", {"learning_rate": 1}, "Extra inputs are not permitted"),
        ("training", {"learning_rate": float("nan")}, "finite number"),
    ],
)
def test_rules_between_fields(section: str, values: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message.replace("(", r"\(")):
        rp.ProjectConfig.model_validate({section: values})


def test_assignments_are_validated() -> None:
    cfg = rp.ProjectConfig()
    cfg.training.learning_rate = 0.5
    with pytest.raises(pydantic.ValidationError, match="greater than 0"):
        cfg.training.learning_rate = -1
    assert cfg.training.learning_rate == 0.5


def test_presets_are_documented_and_only_name_experiment_fields() -> None:
    assert set(EXPERIMENT_PRESETS) == set(PRESET_DESCRIPTIONS) == {"basic", "full", "numerical-stability"}
    for values in EXPERIMENT_PRESETS.values():
        assert set(values) <= set(ExperimentConfig.model_fields) - {"preset"}
        ExperimentConfig(**values)  # every preset is valid on its own
    with pytest.raises(pydantic.ValidationError, match="'basic', 'full' or 'numerical-stability'"):
        ExperimentConfig(preset="everything")


def test_optimization_settings_apply_to_torch() -> None:
    torch = pytest.importorskip("torch")
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark,
              torch.get_float32_matmul_precision())
    try:
        OptimizationConfig(deterministic=True, matmul_precision="high").apply_torch_settings()
        assert torch.are_deterministic_algorithms_enabled() and torch.get_float32_matmul_precision() == "high"
        OptimizationConfig(cudnn_benchmark=True).apply_torch_settings()
        assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]
        torch.set_float32_matmul_precision(before[2])
    assert OptimizationConfig(mixed_precision="bf16").autocast_dtype == "bfloat16"
    assert OptimizationConfig().autocast_dtype is None
