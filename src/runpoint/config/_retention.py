"""``experiment.retention``: which old runs ``runpoint gc --policy`` deletes.

Example (``configs/base.yaml``)::

    experiment:
      retention:
        older_than: 30d
        statuses: [failed, crashed, killed]
        keep_tags: [keep, paper]
        keep_last: 5
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, field_validator

from .._util.durations import parse_duration
from ._section_types import SECTION, PositiveInt

EndedStatus = Literal["completed", "failed", "killed", "crashed"]


def _every_end() -> list[EndedStatus]:
    return ["completed", "failed", "killed", "crashed"]


class RetentionPolicy(BaseModel):
    """Run retention, applied by ``runpoint gc --policy``: runs ended longer ago than older_than go, unless kept."""

    model_config = SECTION

    older_than: str | None = Field(
        default=None,
        description="Delete runs that ended longer ago than this: 30d, 12h, 90m, 2w, 1d12h. "
        "null: no policy, runpoint gc --policy refuses.",
    )
    statuses: list[EndedStatus] = Field(
        default_factory=_every_end,
        min_length=1,
        description="Only runs that ended with one of these statuses; running runs are never deleted.",
    )
    keep_tags: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=lambda: ["keep"], description="Runs with any of these tags are always kept."
    )
    keep_last: PositiveInt | None = Field(
        default=None, description="Always keep the newest N runs of each project, whatever their age or status."
    )

    @field_validator("older_than")
    @classmethod
    def _a_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # its ValueError names the problem; pydantic adds the field
        return value

    @field_validator("statuses")
    @classmethod
    def _once_each(cls, values: list[str]) -> list[str]:
        repeated = sorted({status for status in values if values.count(status) > 1})
        if repeated:
            raise ValueError(f"{', '.join(map(repr, repeated))} listed more than once")
        return values
