"""Checking what users pass to the checkpoint manager, with errors that say what to do."""

from __future__ import annotations

import platform
import sys
from typing import Any, Mapping, TypeVar

from ..errors import CheckpointError, InvalidArgumentError
from .policy import BestN


def check_step(step: Any) -> int:
    if isinstance(step, bool) or not hasattr(step, "__index__"):
        raise InvalidArgumentError("step", f"must be an int, got {type(step).__qualname__}")
    step = int(step.__index__())
    if step < 0:
        raise InvalidArgumentError("step", f"must be >= 0, got {step}")
    return step


def check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    """``metrics`` as a dict of floats; numpy scalars and one-element tensors are accepted."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise InvalidArgumentError("metrics", f"must be a dict of numbers, not {type(metrics).__qualname__}")
    checked: dict[str, float] = {}
    for key, value in metrics.items():
        if callable(getattr(value, "item", None)):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidArgumentError("metrics", f"{key!r} must be a number, got {type(value).__qualname__}")
        checked[str(key)] = float(value)
    return checked


def best_policy(policy: Any) -> BestN | None:
    """The :class:`BestN` inside a retention policy, if any (then every save needs its metric)."""
    if isinstance(policy, BestN):
        return policy
    for part in getattr(policy, "policies", ()):
        found = best_policy(part)
        if found is not None:
            return found
    return None


P = TypeVar("P")


def refuse_sharded_encryption(key: Any, process: P) -> P:
    """``process``, unless ``key`` asks to encrypt its sharded saves: encryption wraps the files
    SafetensorsIO writes, and sharded saves are written by ``torch.distributed.checkpoint``."""
    if key is not None and getattr(process, "sharded", False):
        raise InvalidArgumentError(
            "encrypt", "is not supported for sharded checkpoints (a torch.distributed job): their files are "
                       "written by torch.distributed.checkpoint, which runpoint cannot seal yet; save from one "
                       "process (rp.CheckpointManager(..., process=LocalProcess()) on rank 0) or drop encrypt=")
    return process


def versions() -> dict[str, str]:
    """Versions recorded in each manifest."""
    from .._version import __version__

    found = {"runpoint": __version__, "python": platform.python_version()}
    for name in ("torch", "numpy"):
        module = sys.modules.get(name)
        if module is not None:
            found[name] = str(getattr(module, "__version__", "?"))
    return found


def rng_names(enabled: bool) -> tuple[str, ...]:
    """The generators :func:`runpoint.checkpoint._rng.capture` records in this process."""
    if not enabled:
        return ()
    names = ["python"]
    if "numpy" in sys.modules:
        names.append("numpy")
    torch = sys.modules.get("torch")
    if torch is not None:
        names.append("torch")
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            names.append("cuda")
    return tuple(names)


_ERRNO_REASONS = {
    28: "the disk is full", 122: "the disk quota is exceeded", 13: "permission denied",
    1: "operation not permitted", 30: "the file system is read-only",
}


def save_error(step: int, exc: OSError, directory: str) -> CheckpointError:
    """The error a failed save raises: what went wrong, in words, and that nothing older changed."""
    reason = _ERRNO_REASONS.get(exc.errno or 0, exc.strerror or str(exc))
    return CheckpointError(
        f"could not save the checkpoint of step {step} in {directory}: {reason} ({exc}); "
        "the checkpoints saved before are untouched", directory,
    )
