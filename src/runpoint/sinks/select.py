"""Which sinks a run mirrors to: ``rp.init(sinks=...)``, the config's ``experiment.sinks``
and ``$RUNPOINT_SINKS``, together.

Every place names sinks the same way: a built-in name (``"tensorboard"``, ``"mlflow"``,
``"wandb"``), a one-key mapping from a name to its options (``{"mlflow":
{"tracking_uri": "http://127.0.0.1:5000"}}``, handy in YAML; a mapping of several
names to their options is one entry per name), or, in code, a sink object. The union of all three sources is used, the first mention of a name winning;
``RUNPOINT_SINKS=off`` turns every sink off (for CI, or a quick local try).
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any, Iterable, Mapping

from .._util.optional import check
from ..errors import InvalidArgumentError
from .base import Sink

SINKS_ENV = "RUNPOINT_SINKS"
_OFF = {"0", "off", "none", "false", "no"}

# name -> (module, class); the classes name their package and extra
BUILTIN: dict[str, tuple[str, str]] = {
    "tensorboard": ("runpoint.sinks.tensorboard", "TensorBoardSink"),
    "mlflow": ("runpoint.sinks.mlflow", "MLflowSink"),
    "wandb": ("runpoint.sinks.wandb", "WandbSink"),
}


def select_sinks(requested: Any, config: Mapping[str, Any] | None) -> list[Sink]:
    """The sinks to start for a run; raises :class:`InvalidArgumentError` on a bad entry.

    Nothing is imported or started here beyond checking that each built-in sink's
    package is installed (a missing one raises :class:`~runpoint.errors.MissingDependencyError`).
    """
    env = os.environ.get(SINKS_ENV, "").strip()
    if env.lower() in _OFF:
        return []
    entries: list[tuple[str, Any]] = []
    if requested is not None:
        entries += [("sinks", entry) for entry in _as_list(requested, "sinks")]
    experiment = (config or {}).get("experiment")
    if isinstance(experiment, Mapping) and experiment.get("sinks") is not None:
        entries += [("experiment.sinks", entry) for entry in _as_list(experiment["sinks"], "experiment.sinks")]
    if env:
        entries += [(SINKS_ENV, name) for name in re.split(r"[,\s]+", env) if name]
    chosen: list[Sink] = []
    names: set[str] = set()
    for source, entry in entries:
        sink = _build(source, entry)
        if sink.name not in names:
            names.add(sink.name)
            chosen.append(sink)
    return chosen


def _as_list(value: Any, source: str) -> list[Any]:
    if isinstance(value, str):
        return [name for name in re.split(r"[,\s]+", value.strip()) if name]
    if isinstance(value, Mapping):  # {mlflow: {...}, tensorboard: null}: one entry per sink
        return [{name: options} for name, options in value.items()]
    if _is_sink(value):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise InvalidArgumentError(source, f"expected a list of sinks, got {type(value).__qualname__}")


def _is_sink(value: Any) -> bool:
    return isinstance(getattr(value, "name", None), str) and all(
        callable(getattr(value, method, None)) for method in ("start", "write", "finish")
    )


def _build(source: str, entry: Any) -> Sink:
    if _is_sink(entry):
        return entry  # type: ignore[no-any-return]
    options: Any
    if isinstance(entry, str):
        name, options = entry.strip().lower(), {}
    elif isinstance(entry, Mapping) and len(entry) == 1:
        name, options = next(iter(entry.items()))
        if options is None:
            options = {}
        if not isinstance(name, str) or not isinstance(options, Mapping):
            raise InvalidArgumentError(source, f"{entry!r}: write a sink as {{name: {{option: value}}}}")
    else:
        raise InvalidArgumentError(
            source, f"{entry!r} is not a sink: give a name ({', '.join(BUILTIN)}), "
            "{name: {options}}, or an object with name, start, write and finish"
        )
    if name not in BUILTIN:
        raise InvalidArgumentError(source, f"unknown sink {name!r}; the built-in sinks are {', '.join(BUILTIN)}")
    module_name, class_name = BUILTIN[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    check(cls.package, cls.extra, f"the {name} sink")
    options = dict(options)
    if isinstance(options.get("options"), Mapping):  # SinkOptions written out in YAML
        from .base import SinkOptions

        try:
            options["options"] = SinkOptions(**options["options"])
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(source, f"{name}: options: {exc}") from None
    try:
        return cls(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise InvalidArgumentError(source, f"{name}: {exc}") from None
