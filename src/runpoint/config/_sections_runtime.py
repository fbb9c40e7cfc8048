"""The runtime sections of ``ProjectConfig``: PyTorch's speed/reproducibility switches
(:class:`OptimizationConfig`) and how the trained model is exported and served
(:class:`DeploymentConfig`). Import them from :mod:`runpoint.config.schema`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

from ._section_types import SECTION, PositiveInt

__all__ = ["DeploymentConfig", "OptimizationConfig"]


class OptimizationConfig(BaseModel):
    """Speed and reproducibility switches of PyTorch."""

    model_config = SECTION

    mixed_precision: Literal["none", "fp16", "bf16"] = Field(
        default="none", description="Autocast dtype for mixed precision; 'none' trains in float32."
    )
    compile: bool = Field(default=False, description="Wrap the model in torch.compile.")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        default="default", description="torch.compile mode."
    )
    gradient_checkpointing: bool = Field(default=False, description="Recompute activations in backward to save memory.")
    deterministic: bool = Field(default=False, description="Use deterministic algorithms only (slower, reproducible).")
    cudnn_benchmark: bool = Field(default=False, description="Let cuDNN pick the fastest kernels (not reproducible).")
    matmul_precision: Literal["highest", "high", "medium"] = Field(
        default="highest", description="float32 matmul precision; 'high' allows TF32 on recent GPUs."
    )
    profile: bool = Field(default=False, description="Record a torch.profiler trace of a few steps.")
    profile_steps: PositiveInt = Field(default=5, description="Steps the profiler records.")

    @model_validator(mode="after")
    def _reproducible_or_fast(self) -> "OptimizationConfig":
        if self.deterministic and self.cudnn_benchmark:
            raise ValueError("deterministic and cudnn_benchmark are both true: cuDNN's benchmark picks kernels "
                             "nondeterministically; turn one of them off")
        return self

    @property
    def autocast_dtype(self) -> str | None:
        """``"float16"``, ``"bfloat16"``, or None without mixed precision (a torch dtype name)."""
        return {"fp16": "float16", "bf16": "bfloat16"}.get(self.mixed_precision)

    def apply_torch_settings(self) -> None:
        """Set torch's global determinism, cuDNN benchmark and matmul precision from this section."""
        import torch

        torch.use_deterministic_algorithms(self.deterministic, warn_only=False)
        torch.backends.cudnn.deterministic = self.deterministic
        torch.backends.cudnn.benchmark = self.cudnn_benchmark
        torch.set_float32_matmul_precision(self.matmul_precision)


class DeploymentConfig(BaseModel):
    """How the trained model is exported and served."""

    model_config = SECTION

    export_format: Literal["safetensors", "torchscript", "onnx", "state_dict"] = Field(
        default="safetensors", description="Format of the exported model."
    )
    device: str = Field(
        default="cpu", pattern=r"^(cpu|auto|mps|cuda(:\d+)?)$",
        description="Device to serve on: cpu, cuda, cuda:N, mps or auto."
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address the server listens on.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the server listens on.")
    batch_size: PositiveInt = Field(default=1, description="Largest batch of requests served at once.")
    workers: PositiveInt = Field(default=1, description="Server worker processes.")
    api_key: SecretStr | None = Field(
        default=None,
        description="Key clients must send; masked wherever runpoint writes it. Set it with RUNPOINT__DEPLOYMENT__API_KEY."
    )
