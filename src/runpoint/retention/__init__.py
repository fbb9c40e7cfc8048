"""Run retention and size accounting: ``runpoint gc`` and ``runpoint du``.

Example::

    from runpoint import query, retention

    store = query.open_root("runpoint")
    plan = retention.plan_gc(store, retention.GcRule.parse("30d", statuses="failed,crashed"))
    result = retention.delete_runs(store, plan.to_delete)
    print(result.deleted, plan.bytes_to_free().total)
"""

from .accounting import ProjectBytes, RunBytes, total, usage_by_project, usage_by_run
from .deletion import (
    TRASH_DIR,
    GcResult,
    delete_runs,
    finish_interrupted,
    trash_entries,
)
from .selection import ENDED, GcEntry, GcPlan, GcRule, local_root, not_local, plan_gc
from .usage import Usage, run_usage

__all__ = [
    "ENDED", "TRASH_DIR", "GcEntry", "GcPlan", "GcResult", "GcRule", "Usage", "delete_runs",
    "ProjectBytes", "RunBytes", "finish_interrupted", "local_root", "not_local", "plan_gc", "run_usage", "total",
    "trash_entries", "usage_by_project", "usage_by_run",
]
