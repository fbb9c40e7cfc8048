"""The ``experiment.sinks`` field: which built-in sinks a config may name, and their options.

Config depends on no other runpoint package, so the option names of the built-in sinks
are written down here; a test checks that they match the sinks' constructors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator

SINK_OPTIONS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("logdir", "options"),
    "mlflow": ("tracking_uri", "experiment", "log_config_artifact", "options"),
    "wandb": ("project", "entity", "mode", "dir", "options"),
}

SinkName = Literal["tensorboard", "mlflow", "wandb"]


def check_sink_entry(entry: Any) -> Any:
    """A sink name, or ``{name: {option: value}}`` with options the sink takes; a clear error otherwise."""
    import difflib

    names = ", ".join(SINK_OPTIONS)
    if isinstance(entry, str) or (isinstance(entry, Mapping) and len(entry) == 1):
        name, options = (entry, None) if isinstance(entry, str) else next(iter(entry.items()))
        if name not in SINK_OPTIONS:
            close = difflib.get_close_matches(str(name), list(SINK_OPTIONS), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if isinstance(entry, str):
                raise ValueError(f"expected a sink: {names}{hint}")
            raise ValueError(f"unknown sink {name!r}, expected one of {names}{hint}")
        if options is not None and not isinstance(options, Mapping):
            raise ValueError(f"expected the options of the {name} sink as a mapping, like {{{name}: {{option: value}}}}")
        accepted = SINK_OPTIONS[name]
        unknown = [key for key in options or {} if key not in accepted]
        if unknown:
            raise ValueError(f"the {name} sink has no option {unknown[0]!r}; it takes {', '.join(accepted)}")
        return entry
    if isinstance(entry, Mapping):
        raise ValueError(f"expected one sink per list entry, {{name: {{option: value}}}}; got {len(entry)} names")
    raise ValueError(f"expected a sink name ({names}) or {{name: {{option: value}}}}")


SinkEntry = Annotated[Union[SinkName, dict[SinkName, Union[dict[str, Any], None]]], BeforeValidator(check_sink_entry)]


def sinks_json_schema(schema: dict[str, Any]) -> None:
    """``experiment.sinks`` is a list of entries or one mapping of names to options."""
    items = schema.pop("items")
    del schema["type"]
    schema["anyOf"] = [{"type": "array", "items": items}, items["anyOf"][1]]


