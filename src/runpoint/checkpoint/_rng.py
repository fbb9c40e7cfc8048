"""Random number generator states: the global ones, and generator objects in a state.

Exact resume needs every source of randomness back where it was: Python's ``random``,
NumPy's global generator, torch's CPU generator and the generator of every CUDA device.
:func:`capture` records those the process uses (NumPy and torch only when they are
imported; CUDA only when it was initialized, so that saving never starts CUDA), and
:func:`restore` puts them back. Generator objects placed in a checkpoint's state
(``torch.Generator``, ``random.Random``, ``numpy.random.Generator`` and
``RandomState``) have no ``state_dict``; the adapters here stand in for one.

States are plain data (tuples, ints, bytes, small NumPy arrays), so they are stored
without pickle.
"""

from __future__ import annotations

import importlib
import logging
import random
import sys
from typing import Any

logger = logging.getLogger("runpoint")

_BIT_GENERATORS = frozenset({"MT19937", "PCG64", "PCG64DXSM", "Philox", "SFC64"})


def _loaded(name: str) -> Any:
    """The module ``name`` if this process imported it, else None (never imports it first).

    Another thread may be importing it right now (a sink importing TensorBoard imports
    numpy): importing it again waits until it is complete instead of seeing half a module.
    """
    if name not in sys.modules:
        return None
    return importlib.import_module(name)


def capture() -> dict[str, Any]:
    """The states of the global generators this process uses."""
    states: dict[str, Any] = {"python": random.getstate()}
    np = _loaded("numpy")
    if np is not None:
        states["numpy"] = np.random.get_state()
    torch = _loaded("torch")
    if torch is not None:
        states["torch"] = bytes(torch.get_rng_state().numpy())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = [bytes(state.numpy()) for state in torch.cuda.get_rng_state_all()]
    return states


def restore(states: dict[str, Any]) -> None:
    """Put the global generators back as :func:`capture` found them."""
    if "python" in states:
        random.setstate(_as_tuple(states["python"]))
    if "numpy" in states:
        import numpy as np

        np.random.set_state(_as_tuple(states["numpy"]))
    if "torch" in states or "cuda" in states:
        import torch

        if "torch" in states:
            torch.set_rng_state(_byte_tensor(states["torch"]))
        saved = states.get("cuda") or []
        if saved and torch.cuda.is_available():
            count = torch.cuda.device_count()
            if count != len(saved):
                logger.warning(
                    "runpoint: the checkpoint has RNG states of %d CUDA devices, this process sees %d; "
                    "restoring the first %d", len(saved), count, min(count, len(saved)),
                )
            for index, state in enumerate(saved[:count]):
                torch.cuda.set_rng_state(_byte_tensor(state), index)
        elif saved:
            logger.warning("runpoint: the checkpoint has CUDA RNG states but CUDA is not available; skipped")


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(_as_tuple(v) if isinstance(v, list) else v for v in value)


def _byte_tensor(data: bytes) -> Any:
    import torch

    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


# -- generator objects inside a state -------------------------------------------------


def generator_kind(value: Any) -> str | None:
    """``generator:<kind>`` for generator objects, None for anything else."""
    if isinstance(value, random.Random):
        return "generator:python"
    torch = _loaded("torch")
    if torch is not None and isinstance(value, torch.Generator):
        return "generator:torch"
    np = _loaded("numpy")
    if np is not None:
        if isinstance(value, np.random.Generator):
            return "generator:numpy"
        if isinstance(value, np.random.RandomState):
            return "generator:numpy-legacy"
    return None


def generator_state(value: Any, kind: str) -> Any:
    if kind == "generator:python":
        return value.getstate()
    if kind == "generator:torch":
        return {"device": str(value.device), "state": bytes(value.get_state().numpy())}
    if kind == "generator:numpy":
        return value.bit_generator.state
    return value.get_state()  # numpy-legacy


def set_generator_state(value: Any, kind: str, state: Any) -> None:
    """Load ``state`` into the generator object ``value``; raises ValueError on a mismatch."""
    actual = generator_kind(value)
    if actual != kind:
        raise ValueError(f"the checkpoint holds a {kind.split(':')[1]} generator, the state has {type(value).__qualname__}")
    if kind == "generator:python":
        value.setstate(_as_tuple(state))
    elif kind == "generator:torch":
        value.set_state(_byte_tensor(state["state"]))
    elif kind == "generator:numpy":
        value.bit_generator.state = state
    else:
        value.set_state(_as_tuple(state))


def restore_generator(kind: str, state: Any) -> Any:
    """A new generator object holding ``state`` (for ``load_checkpoint``'s plain values)."""
    if kind == "generator:python":
        generator: Any = random.Random()
    elif kind == "generator:torch":
        import torch

        generator = torch.Generator(device=state.get("device", "cpu"))
    elif kind == "generator:numpy":
        import numpy as np

        name = state.get("bit_generator")
        if name not in _BIT_GENERATORS:
            raise ValueError(f"unknown numpy bit generator {name!r}")
        bit_generator = getattr(np.random, name)()
        generator = np.random.Generator(bit_generator)
    elif kind == "generator:numpy-legacy":
        import numpy as np

        generator = np.random.RandomState()
    else:
        raise ValueError(f"unknown generator kind {kind!r}")
    set_generator_state(generator, kind, state)
    return generator
