"""What names a model version: ``NAME`` (its latest version), ``NAME:VERSION`` or ``NAME@ALIAS``;
and what names a source to register: a run, ``RUN:step=N``, or a checkpoint path.

Example::

    parse_model_ref("digits@champion")      # ModelRef(name='digits', alias='champion')
    parse_model_ref("digits:3").version     # 3
    parse_source("01hx2k9c:step=400")        # ('01hx2k9c', 400)
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgumentError
from ..store.model_records import check_alias, check_model_name

FORMS = "NAME (the latest version), NAME:VERSION (e.g. digits:3) or NAME@ALIAS (e.g. digits@champion)"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference: a model name and at most one of a version and an alias."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        return f"{self.name}@{self.alias}" if self.alias is not None else self.name


def parse_model_ref(text: str) -> ModelRef:
    """Parse ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; InvalidArgumentError saying the forms otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError("model", f"give a model as {FORMS}")
    text = text.strip()
    name, at, alias = text.partition("@")
    name, colon, number = name.partition(":")
    try:
        if at and colon:
            raise InvalidArgumentError("model", "both a version and an alias")
        check_model_name(name)
        if at:
            return ModelRef(name, alias=check_alias(alias))
        if colon:
            if not number.isdigit() or int(number) < 1:
                raise InvalidArgumentError("version", f"{number!r} is not a version number (1, 2, ...)")
            return ModelRef(name, version=int(number))
        return ModelRef(name)
    except InvalidArgumentError as exc:
        raise InvalidArgumentError("model", f"{text!r:.100} is not a model reference ({exc}); give {FORMS}") from None


def parse_source(text: str) -> tuple[str, int | None]:
    """``RUN`` or ``RUN:step=N`` -> (run reference, step or None)."""
    ref, sep, rest = text.partition(":")
    if not sep:
        return ref, None
    key, eq, value = rest.partition("=")
    if key.strip() != "step" or not eq or not value.strip().lstrip("-").isdigit():
        raise InvalidArgumentError("source", f"{text!r:.100}: give a run (id, prefix, name or 'latest'), RUN:step=N, "
                                             "or the path of a checkpoint")
    return ref, int(value)
