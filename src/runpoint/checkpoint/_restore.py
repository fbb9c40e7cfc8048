"""Loading a decoded checkpoint into the live objects of a training script, in place.

Two passes. The first compares the checkpoint with the objects given (top-level keys,
module parameter names and shapes, optimizer parameter groups, tensor shapes, generator
kinds) and collects every problem, so that one error lists them all and nothing was
touched yet. The second loads: ``load_state_dict`` for objects that have one, ``copy_``
into existing tensors, element by element into dicts and lists, and plain values by
replacement in the caller's mapping.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, MutableMapping

from ..errors import CheckpointError
from . import _rng
from ._state import Stateful, TensorRef, materialize, render

_MISSING = object()


def load_into(
    target: MutableMapping[str, Any], saved: Mapping[str, Any], tensors: Mapping[str, Any], *,
    strict: bool, map_location: Any, where: str, dry_run: bool = False,
) -> list[str]:
    """Load ``saved`` into ``target``; returns the keys of ``target`` left untouched.

    ``dry_run`` only checks (raising as a load would), changing nothing.
    """
    missing = [key for key in target if key not in saved]
    unexpected = [key for key in saved if key not in target]
    problems: list[str] = []
    if strict and missing:
        problems.append(f"not in the checkpoint: {', '.join(map(repr, missing))} (it has {', '.join(map(repr, saved))})")
    if strict and unexpected:
        problems.append(f"in the checkpoint but not in the state given: {', '.join(map(repr, unexpected))}")
    for key in target:
        if key in saved:
            _check(target[key], saved[key], tensors, (key,), strict, problems)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise CheckpointError(f"cannot restore from {where}: {len(problems)} mismatch(es):\n{listed}", where)
    if dry_run:
        return missing
    for key in list(target):
        if key in saved:
            try:
                target[key] = _apply(target[key], saved[key], tensors, strict, map_location)
            except CheckpointError:
                raise
            except Exception as exc:
                raise CheckpointError(f"cannot restore {render((key,))} from {where}: {exc}", where) from exc
    return missing


def _shape(ref: TensorRef, tensors: Mapping[str, Any]) -> tuple[int, ...]:
    return tuple(tensors[ref.name].shape)


def _check(current: Any, saved: Any, tensors: Mapping[str, Any], path: tuple[Any, ...], strict: bool,
           problems: list[str]) -> None:
    where = render(path)
    if isinstance(saved, Stateful):
        if saved.is_generator:
            if _rng.generator_kind(current) != saved.kind:
                problems.append(f"{where}: the checkpoint holds a {saved.kind[10:]} generator, "
                                f"the state has {type(current).__qualname__}")
        elif not callable(getattr(current, "load_state_dict", None)):
            problems.append(f"{where}: saved from an object with state_dict() ({saved.kind[11:]}), "
                            f"but {type(current).__qualname__} has no load_state_dict()")
        else:
            _check_state_dict(current, saved.state, tensors, where, strict, problems)
        return
    if isinstance(saved, TensorRef):
        if _is_tensor(current) and tuple(current.shape) != _shape(saved, tensors):
            problems.append(f"{where}: shape {tuple(current.shape)} here, {_shape(saved, tensors)} in the checkpoint")
        return
    if isinstance(saved, dict) and isinstance(current, MutableMapping):
        for key, item in saved.items():
            if key in current:
                _check(current[key], item, tensors, (*path, key), strict, problems)
    elif isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, (now, then) in enumerate(zip(current, saved)):
            _check(now, then, tensors, (*path, index), strict, problems)


def _is_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def _check_state_dict(current: Any, state: Any, tensors: Mapping[str, Any], where: str, strict: bool,
                      problems: list[str]) -> None:
    import torch

    if isinstance(current, torch.nn.Module) and isinstance(state, dict):
        expected = current.state_dict()
        missing = [k for k in expected if k not in state]
        unexpected = [k for k in state if k not in expected]
        if strict and missing:
            problems.append(f"{where}: parameters missing from the checkpoint: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"{where}: unexpected parameters in the checkpoint: {', '.join(unexpected)}")
        for key, ref in state.items():
            if isinstance(ref, TensorRef) and key in expected and _is_tensor(expected[key]):
                here, there = tuple(expected[key].shape), _shape(ref, tensors)
                if here != there:
                    problems.append(f"{where}: {key}: shape {here} here, {there} in the checkpoint")
    elif isinstance(current, torch.optim.Optimizer) and isinstance(state, dict):
        groups = state.get("param_groups") or []
        if len(groups) != len(current.param_groups):
            problems.append(f"{where}: {len(current.param_groups)} parameter groups here, {len(groups)} in the checkpoint")
            return
        for index, (mine, theirs) in enumerate(zip(current.param_groups, groups)):
            count = len(theirs.get("params", [])) if isinstance(theirs, dict) else -1
            if len(mine["params"]) != count:
                problems.append(f"{where}: parameter group {index} has {len(mine['params'])} parameters here, "
                                f"{count} in the checkpoint")


def _apply(current: Any, saved: Any, tensors: Mapping[str, Any], strict: bool, map_location: Any) -> Any:
    if isinstance(saved, Stateful):
        if saved.is_generator:
            _rng.set_generator_state(current, saved.kind, materialize(saved.state, tensors))
            return current
        import torch

        if isinstance(current, torch.nn.Module):  # copies into its parameters: no need to own the tensors
            current.load_state_dict(materialize(saved.state, tensors, map_location, own=False), strict=strict)
        else:  # an optimizer keeps the tensors it is given
            current.load_state_dict(materialize(saved.state, tensors, map_location))
        return current
    if isinstance(saved, TensorRef):
        if _is_tensor(current):
            import torch

            with torch.no_grad():
                current.copy_(tensors[saved.name])
            return current
        return materialize(saved, tensors, map_location)
    if isinstance(saved, dict) and isinstance(current, MutableMapping):
        for key, item in saved.items():
            now = current.get(key, _MISSING)
            current[key] = materialize(item, tensors, map_location) if now is _MISSING else _apply(
                now, item, tensors, strict, map_location)
        return current
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        for index, item in enumerate(saved):
            current[index] = _apply(current[index], item, tensors, strict, map_location)
        return current
    return materialize(saved, tensors, map_location)
