"""The ``experiment.redact`` and ``experiment.console_segment_bytes`` fields: what runpoint keeps of console output.

Config depends on no other runpoint package: the pattern names are checked by
:mod:`runpoint.logs.redact`, which applies them; here only that each pattern compiles.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ._section_types import SECTION

DEFAULT_CONSOLE_SEGMENT_BYTES = 64 * 2**20


class RedactConfig(BaseModel):
    """Secrets redacted from captured console output, ``rp.Text`` and runpoint's own log, before anything is written."""

    model_config = SECTION

    builtin: bool = Field(
        default=True,
        description="Redact well-known secret formats: AWS keys, OpenAI sk-, GitHub, Slack, Google API keys, "
        "private key blocks, JWTs, runpoint tokens, bearer tokens and passwords in URLs.",
    )
    emails: bool = Field(default=False, description="Also redact email addresses.")
    patterns: list[str] | dict[str, str] = Field(
        default_factory=list,
        description="Regular expressions of your own to redact: a list (replaced by [REDACTED:custom]) or "
        "{name: regex} (replaced by [REDACTED:name]); a group named 'secret' limits the replacement to it.",
    )

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, value: Any) -> Any:
        for pattern in value.values() if isinstance(value, dict) else value:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
            if compiled.search(""):
                raise ValueError(f"{pattern!r} matches empty text")
        return value


def console_segment_field() -> Any:
    return Field(
        default=DEFAULT_CONSOLE_SEGMENT_BYTES, ge=4096,
        description="Size in bytes at which a captured console log (logs/console.log) is closed as a numbered "
        "segment (zstd-compressed in the background) and a new one started.",
    )
