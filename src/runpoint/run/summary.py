"""``run.summary``: a persisted dict of a run's headline numbers.

It holds what you set (``run.summary["best/val_acc"] = 0.98``) and, for every metric
the run logged, its last value under the metric's key and its extremes under
``<key>.min`` and ``<key>.max`` (W&B's naming). Values you set win over derived ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Mapping, MutableMapping

from ..errors import InvalidValueError

if TYPE_CHECKING:
    from ..store.base import Store
    from .writer import Writer


def summary_value(key: str, value: Any) -> Any:
    """``value`` as JSON data; numpy and torch scalars become Python numbers."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): summary_value(f"{key}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [summary_value(key, v) for v in value]
    if callable(getattr(value, "item", None)) and getattr(value, "ndim", None) == 0:
        return value.item()  # numpy scalars, 0-d tensors
    raise InvalidValueError(key, value, "summary values must be numbers, strings, lists or dicts of them")


def metric_summary(store: "Store", run_id: str) -> dict[str, Any]:
    """The derived part of a summary: last, min and max of every metric."""
    derived: dict[str, Any] = {}
    for key, stats in store.metric_stats(run_id).items():
        derived[key] = stats.last
        derived[f"{key}.min"] = stats.min
        derived[f"{key}.max"] = stats.max
    return derived


class Summary(MutableMapping[str, Any]):
    """A run's summary. Setting a key persists it through the run's writer.

    Example::

        run.summary["best/val_acc"] = 0.981
        run.summary["train/loss"]        # last logged value
        run.summary["train/loss.min"]    # smallest logged value

    In a multi-rank job only rank 0's summary is stored; what another rank sets stays in
    that rank's process (it reads back there, and nowhere else).
    """

    def __init__(self, run_id: str, store: "Store", writer: "Writer", values: dict[str, Any],
                 persist: bool = True) -> None:
        self._run_id = run_id
        self._persist = persist  # False on rank N > 0 of a multi-rank job: its values stay in this process
        self._store = store
        self._writer = writer
        self._values = dict(values)

    def _merged(self) -> dict[str, Any]:
        self._writer.flush()
        merged = metric_summary(self._store, self._run_id)
        merged.update(self._values)
        return merged

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str) or not key:
            raise InvalidValueError(repr(key), key, "summary keys must be non-empty strings")
        value = summary_value(key, value)
        self._values[key] = value
        if self._persist:
            self._writer.set_summary(key, value)

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        return self._merged()[key]

    def __delitem__(self, key: str) -> None:
        if key not in self._values:
            raise KeyError(f"{key!r} is not a summary value you set (derived values cannot be deleted)")
        del self._values[key]
        if self._persist:
            self._writer.delete_summary(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def __repr__(self) -> str:
        return f"Summary({self._merged()!r})"
