"""What ``rp.init`` keeps of console output: the redaction patterns and the console log's segment size.

Each comes from ``rp.init``'s argument when given, else from the config's ``experiment``
section (``experiment.redact``, ``experiment.console_segment_bytes``), else the defaults:
well-known secret formats redacted, 64 MiB segments.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from ..config.schema import DEFAULT_CONSOLE_SEGMENT_BYTES, RedactConfig
from ..errors import InvalidArgumentError
from ..logs.redact import Redactor

MIN_SEGMENT_BYTES = 4096


def _section(plain: dict[str, Any]) -> dict[str, Any]:
    section = plain.get("experiment")
    return section if isinstance(section, dict) else {}


def _settings(value: Any, argument: str) -> RedactConfig:
    try:
        return value if isinstance(value, RedactConfig) else RedactConfig.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'redact'}: {e['msg']}" for e in exc.errors())
        raise InvalidArgumentError(argument, problems) from None


def _pairs(patterns: list[str] | dict[str, str]) -> list[tuple[str, str]]:
    return list(patterns.items()) if isinstance(patterns, dict) else [("custom", pattern) for pattern in patterns]


def redactor_for(redact: Any, plain: dict[str, Any]) -> Redactor:
    """The redactor ``rp.init(redact=...)`` and the config ask for.

    ``redact``: None (the config's ``experiment.redact``, else the defaults), False (nothing
    redacted), True (the built-in formats), a list of regular expressions or ``{name: regex}``
    (added to the config's), or the whole setting (``{"builtin": ..., "emails": ..., "patterns": ...}``).
    """
    configured = _section(plain).get("redact")
    settings = _settings(configured if configured is not None else {}, "experiment.redact")
    pairs = _pairs(settings.patterns)
    if redact is False:
        return Redactor()
    if redact is True:
        settings = settings.model_copy(update={"builtin": True})
    elif isinstance(redact, (list, tuple)) or (isinstance(redact, Mapping) and not set(redact) & set(RedactConfig.model_fields)):
        pairs += _pairs(_settings({"patterns": list(redact) if isinstance(redact, (list, tuple)) else dict(redact)},
                                  "redact").patterns)
    elif redact is not None:
        settings = _settings(redact, "redact")
        pairs = _pairs(settings.patterns)
    return Redactor.from_settings(builtin=settings.builtin, emails=settings.emails, patterns=pairs)


def segment_bytes_for(value: Any, plain: dict[str, Any]) -> int:
    """The console log's segment size: ``rp.init(console_segment_bytes=...)``, else the config's, else 64 MiB."""
    if value is None:
        value = _section(plain).get("console_segment_bytes", DEFAULT_CONSOLE_SEGMENT_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_SEGMENT_BYTES:
        raise InvalidArgumentError("console_segment_bytes", f"must be a whole number of bytes >= {MIN_SEGMENT_BYTES}, "
                                   f"got {value!r}")
    return value
