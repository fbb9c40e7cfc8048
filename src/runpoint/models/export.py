"""A registered version's weights for deployment: one safetensors file, or a ``torch.export`` program (.pt2).

Both read the checkpoint through the verified path (its manifest must still have the
registered digest). A .pt2 needs the module itself: ``factory`` (``"pkg.module:make_model"``,
imported with the working directory on ``sys.path``, called with no arguments) builds it,
the weights are loaded into it strictly, and ``torch.export.export`` traces it on the
example inputs.

Example::

    export_weights(store, version, "digits.safetensors")
    export_program(store, version, "digits.pt2", "nets:make_net", [example_input("1x4")])
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any, Sequence

from ..checkpoint.export import write_weights
from ..checkpoint.pinned import pinned_weights
from ..errors import InvalidArgumentError, RunpointError
from ..store import ModelVersionRecord, Store
from .fetch import local_checkpoint
from .resolve import checkpoint_location

_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")


def version_weights(store: Store, version: ModelVersionRecord, key: str | None = None) -> dict[str, Any]:
    """The verified tensors of the module saved under ``key`` (default: ``model``, or the only module)."""
    with local_checkpoint(store, checkpoint_location(store, version)) as path:
        try:
            weights, _ = pinned_weights(path, version.manifest_hash, key)
        except InvalidArgumentError as exc:  # name the version, not a temporary copy of a server's checkpoint
            message = str(exc).split(": ", 1)[-1].replace(os.fspath(path), f"model {version.ref}")
            raise InvalidArgumentError(exc.argument, message) from None
    return weights


def export_weights(store: Store, version: ModelVersionRecord, out: str | os.PathLike[str], key: str | None = None) -> str:
    """Write the version's model weights as one safetensors file; returns where it went."""
    weights = version_weights(store, version, key)
    metadata = {"format": "pt", "model": version.ref, "step": str(version.step), "run_id": version.run_id or "",
                "manifest_hash": version.manifest_hash or ""}
    return write_weights(out, weights, metadata)


def example_input(spec: str) -> Any:
    """A tensor from ``SHAPE[:DTYPE]`` (``1x4``, ``2x3x32x32:float16``: zeros), or ``@file.pt`` (``torch.load``)."""
    import torch

    if spec.startswith("@"):
        return torch.load(spec[1:], weights_only=True)
    shape_text, _, dtype = spec.partition(":")
    dims = shape_text.lower().split("x")
    if not all(d.isdigit() for d in dims) or (dtype and dtype not in _DTYPES):
        raise InvalidArgumentError("example-input", f"{spec!r}: give SHAPE[:DTYPE] such as 1x4 or 8x3x32x32:float16 "
                                                    f"(dtypes: {', '.join(_DTYPES)}), or @file.pt")
    return torch.zeros([int(d) for d in dims], dtype=getattr(torch, dtype or "float32"))


def build_module(factory: str) -> Any:
    """The module ``"pkg.module:callable"`` builds (the working directory is importable)."""
    module_name, colon, attribute = factory.partition(":")
    if not colon or not module_name or not attribute:
        raise InvalidArgumentError("model", f"{factory!r}: give MODULE:FACTORY, such as nets:make_net")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        make = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError("model", f"cannot load {factory!r}: {exc}") from None
    return make()


def export_program(store: Store, version: ModelVersionRecord, out: str | os.PathLike[str], factory: str,
                   inputs: Sequence[Any], key: str | None = None) -> str:
    """Build the module, load the version's weights into it, ``torch.export`` it on ``inputs`` and save the .pt2."""
    import torch

    module = build_module(factory)
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError("model", f"{factory!r} returned a {type(module).__qualname__}, not a torch.nn.Module")
    try:
        module.load_state_dict(version_weights(store, version, key))
    except RuntimeError as exc:
        raise InvalidArgumentError("model", f"the weights of {version.ref} do not fit the module {factory!r} "
                                            f"builds: {str(exc).splitlines()[0]}") from None
    module.eval()
    quiet = logging.getLogger("torch._subclasses.fake_tensor")  # it logs a traceback of its own before raising
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        program = torch.export.export(module, tuple(inputs))
    except Exception as exc:  # noqa: BLE001 - torch.export raises many kinds; say which and why
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise RunpointError(f"torch.export could not export {version.ref} ({type(exc).__name__}: {first[:300]}); "
                            "check the example inputs' shapes and dtypes, or export the weights as .safetensors") from None
    finally:
        quiet.setLevel(level)
    target = os.fspath(out)
    torch.export.save(program, target)
    return target
