"""The read side: find runs, read what they recorded, compare, analyse, export, archive.

Example::

    from runpoint import query

    store = query.open_root("runpoint")
    for run in query.list_runs(store, project="digits", where=["params.training.lr > 1e-4"]):
        print(run.id, query.metric_history(store, run.id, "val/loss").values[-1])

:mod:`runpoint.query.analysis`, :mod:`runpoint.query.export` and
:mod:`runpoint.query.archive` hold the heavier tools.
"""

from .runs import (
    Comparison,
    compare,
    full_summary,
    list_runs,
    media_keys,
    media_store,
    metric_history,
    open_root,
    parse_condition,
    parse_value,
    read_media,
    record_dict,
    resolve_run,
    run_details,
    run_dir,
)

__all__ = [
    "Comparison",
    "compare",
    "full_summary",
    "list_runs",
    "media_keys",
    "media_store",
    "metric_history",
    "open_root",
    "parse_condition",
    "parse_value",
    "read_media",
    "record_dict",
    "resolve_run",
    "run_details",
    "run_dir",
]
