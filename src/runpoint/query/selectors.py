"""Picking a set of runs with one string: ``tag:baseline``, ``cfg:1a2b3c4d``, ``a1,a2,a3``...

A selector is terms separated by commas. Filter terms narrow down together (AND):

- ``tag:NAME``, ``group:NAME`` (a sweep, a study), ``project:NAME``, ``status:completed``;
- ``config:KEY=VALUE`` (any operator: ``config:training.lr>1e-3``), ``where:EXPR`` (as ``--where``);
- ``cfg:HASH``: a group of :func:`runpoint.query.groups.group_runs` (its label, or a prefix).

Other terms are runs (id, id prefix, name, ``latest``); they are added to what the filters
found. Five seeds of a baseline tagged ``baseline`` are ``tag:baseline``; three runs by id
are ``3f2a,9c1d,77e0``.

Example::

    baseline = select_runs(store, "tag:baseline,project:digits")
"""

from __future__ import annotations

from typing import Iterable

from ..errors import InvalidArgumentError
from ..store import RunRecord, Store
from .groups import DEFAULT_IGNORE, group_label
from .runs import list_runs, parse_condition, resolve_run

FILTERS = ("tag", "group", "project", "status", "config", "where", "cfg")


def is_selector(text: str) -> bool:
    """Whether ``text`` names more than one run's worth: a filter term or a comma list."""
    return "," in text or any(text.startswith(f"{name}:") for name in FILTERS)


def select_runs(store: Store, selector: str, *, ignore: Iterable[str] = DEFAULT_IGNORE) -> list[RunRecord]:
    """The runs ``selector`` picks, oldest first, each once; refuses a selector that picks none."""
    terms = [term.strip() for term in selector.split(",") if term.strip()]
    if not terms:
        raise InvalidArgumentError("runs", "an empty selector: give run ids, or tag:NAME, config:KEY=VALUE, cfg:HASH...")
    filters: dict[str, list[str]] = {}
    refs: list[str] = []
    for term in terms:
        name, colon, value = term.partition(":")
        if colon and name in FILTERS:
            if not value:
                raise InvalidArgumentError("runs", f"{term!r}: say what after {name}:")
            filters.setdefault(name, []).append(value)
        else:
            refs.append(term)
    found = _filtered(store, filters, tuple(ignore)) if filters else []
    seen = {run.id for run in found}
    for ref in refs:
        run = resolve_run(store, ref)
        if run.id not in seen:
            found.append(run)
            seen.add(run.id)
    if not found:
        raise InvalidArgumentError("runs", f"{selector!r} matches no runs (`runpoint ls` lists them)")
    return found


def _filtered(store: Store, filters: dict[str, list[str]], ignore: tuple[str, ...]) -> list[RunRecord]:
    for name in ("group", "project", "status"):
        if len(filters.get(name, [])) > 1:
            raise InvalidArgumentError("runs", f"{name}: given twice; a run has one {name}")
    conditions = [parse_condition(f"params.{text}") for text in filters.get("config", [])]
    conditions += [parse_condition(text) for text in filters.get("where", [])]
    runs = list_runs(
        store, project=_one(filters, "project"), tags=filters.get("tag", []), status=_one(filters, "status"),
        group=_one(filters, "group"), where=conditions, newest_first=False,
    )
    for prefix in filters.get("cfg", []):
        wanted = prefix if prefix.startswith("cfg:") else f"cfg:{prefix}"
        runs = [run for run in runs if group_label(store.get_params(run.id), ignore).startswith(wanted)]
    return runs


def _one(filters: dict[str, list[str]], name: str) -> str | None:
    values = filters.get(name)
    return values[0] if values else None
