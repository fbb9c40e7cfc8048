"""SQL for choosing runs: the WHERE, ORDER BY and LIMIT of :class:`~.base.RunQuery`."""

from __future__ import annotations

from typing import Any

from ..base import Condition, RunQuery
from ._encoding import to_json


def run_filter_sql(query: RunQuery) -> tuple[str, list[Any]]:
    """``(" WHERE ... ORDER BY ... LIMIT ?", args)`` to append to ``SELECT ... FROM runs``."""
    where: list[str] = []
    args: list[Any] = []
    if query.project is not None:
        where.append("project = ?")
        args.append(query.project)
    if query.statuses:
        where.append(f"status IN ({','.join('?' * len(query.statuses))})")
        args.extend(s.value for s in query.statuses)
    if query.group is not None:
        where.append("grp = ?")
        args.append(query.group)
    if query.config_hash:
        where.append("substr(config_hash, 1, ?) = ?")
        args.extend([len(query.config_hash), query.config_hash])
    if query.ids:
        where.append(f"id IN ({','.join('?' * len(query.ids))})")
        args.extend(query.ids)
    for tag in query.tags:
        where.append("EXISTS (SELECT 1 FROM tags WHERE tags.run_id = runs.id AND tags.tag = ?)")
        args.append(tag)
    for condition in query.conditions:
        clause, clause_args = condition_sql(condition)
        where.append(clause)
        args.extend(clause_args)
    sql = ""
    if where:
        sql += " WHERE " + " AND ".join(where)
    order = "DESC" if query.newest_first else "ASC"
    sql += f" ORDER BY created_at {order}, id {order}"
    if query.limit is not None:
        sql += " LIMIT ?"
        args.append(query.limit)
    return sql, args


def condition_sql(condition: Condition) -> tuple[str, list[Any]]:
    """SQL for one filter; ``condition.op`` was validated against the six operators."""
    op, value, key = condition.op, condition.value, condition.key
    numeric = isinstance(value, (int, float))  # bools count as 1 and 0
    if condition.scope == "params":
        column, operand = ("p.num", float(value)) if numeric else ("p.value", to_json(value))  # type: ignore[arg-type]
        sql = f"EXISTS (SELECT 1 FROM params p WHERE p.run_id = runs.id AND p.key = ? AND {column} {op} ?)"
        return sql, [key, operand]
    if condition.scope == "metrics":
        if not numeric:
            raise ValueError(f"metrics.{key} compares numbers, not {value!r}")
        sql = f"EXISTS (SELECT 1 FROM metric_stats m WHERE m.run_id = runs.id AND m.key = ? AND m.vlast {op} ?)"
        return sql, [key, float(value)]  # type: ignore[arg-type]
    if numeric:
        # json_valid first: a NaN or infinite summary value is stored as Python's json writes it
        # (NaN, Infinity), which SQLite's json_type rejects; such a value matches no comparison.
        as_number = (
            "CASE WHEN json_valid(s.value) THEN CASE json_type(s.value) WHEN 'true' THEN 1.0 WHEN 'false' THEN 0.0"
            " WHEN 'integer' THEN CAST(s.value AS REAL) WHEN 'real' THEN CAST(s.value AS REAL) END END"
        )
        sql = f"EXISTS (SELECT 1 FROM summary s WHERE s.run_id = runs.id AND s.key = ? AND {as_number} {op} ?)"
        return sql, [key, float(value)]  # type: ignore[arg-type]
    sql = f"EXISTS (SELECT 1 FROM summary s WHERE s.run_id = runs.id AND s.key = ? AND s.value {op} ?)"
    return sql, [key, to_json(value)]
