"""The pieces every config section shares: the section model config and constrained field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field

# sections forbid unknown keys, validate assignments, and reject inf/nan floats
SECTION = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

PositiveInt = Annotated[int, Field(gt=0)]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
