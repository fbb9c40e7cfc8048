"""Which of a run's config values differ from the schema's defaults, for `runpoint show`."""

from __future__ import annotations

import functools
from typing import Any


@functools.lru_cache(maxsize=1)
def _project_defaults() -> dict[str, Any]:
    from ..config.normalize import flatten, to_plain
    from ..config.schema import ProjectConfig

    return flatten(to_plain(ProjectConfig()))


def split_defaults(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(changed, defaults)``: for a run of the default typed config (rp.ProjectConfig), the
    values set to something else and those left at the defaults; else ``(params, {})``.

    Only ProjectConfig is known here: a run whose keys are not all of its keys keeps every
    value in ``changed``.
    """
    defaults = _project_defaults()
    if not params or not set(defaults) <= set(params):
        return params, {}
    changed = {key: value for key, value in params.items() if key not in defaults or defaults[key] != value}
    same = {key: value for key, value in params.items() if key in defaults and defaults[key] == value}
    return changed, same
