"""``RunHandle``: the narrow view of a run that diagnostics, sinks, checkpoints and integrations use.

They are typed against this protocol, never the concrete :class:`~runpoint.Run`, so a run
backed by another store (the team server's HTTP client, a rank that forwards to rank 0)
works with all of them unchanged. ``Run`` implements it; a test checks that it does.

Example::

    def log_grad_norm(run: RunHandle, norm: float, step: int) -> None:
        run.log_internal({"grad/norm": norm}, step)     # does not move run.step
"""

from __future__ import annotations

from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Mapping,
    Protocol,
    Sequence,
    runtime_checkable,
)

if TYPE_CHECKING:
    from .store.base import Store

__all__ = ["BatchListener", "RunHandle", "SummaryView"]

BatchListener = Callable[[str, Any], None]
"""Called on the writer thread with (run id, batch) for each batch the store committed."""


class SummaryView(Protocol):
    """A run's summary: the last or best value of each key, read and set like a dict."""

    def __getitem__(self, key: str) -> Any: ...

    def __setitem__(self, key: str, value: Any) -> None: ...


@runtime_checkable
class RunHandle(Protocol):
    """What code outside :mod:`runpoint.run` may rely on about a run."""

    id: str
    project: str
    name: str
    config: dict[str, Any]
    tags: tuple[str, ...]
    notes: str
    group: str | None
    resume_count: int

    @property
    def summary(self) -> SummaryView:
        """Last/best values by key (``run.summary["best/acc"] = 0.97``)."""

    @property
    def dir(self) -> Path:
        """The run's directory: config.yaml, meta.json, logs/, media/, checkpoints/."""

    @property
    def step(self) -> int:
        """The step the next ``log`` without ``step=`` will use."""

    @property
    def resumed(self) -> bool:
        """True when this process continues a run an earlier process started."""

    @property
    def rank(self) -> int:
        """This process's rank in a multi-rank job recording the run; 0 for a single process."""

    @property
    def world_size(self) -> int:
        """How many ranks record the run; 1 for a single process."""

    @property
    def store(self) -> "Store":
        """The store the run writes to (its checkpoint registry lives there too)."""

    def log(self, data: Mapping[str, Any], step: int | None = None) -> None:
        """Record user values for one step; never blocks on I/O."""

    def log_internal(self, values: dict[str, Any], step: int) -> None:
        """Record values runpoint computed itself (flat, valid) at ``step`` without moving ``run.step``."""

    def alert(self, title: str, text: str = "", level: str = "warning") -> None:
        """Record an alert on the run (stored, logged once, sent to the configured webhooks)."""

    def add_params(self, params: dict[str, Any], tags: Sequence[str] = ()) -> None:
        """Add searchable params and tags to the run (stored by the writer thread)."""

    def add_batch_listener(self, listener: BatchListener) -> None:
        """Call ``listener`` with every batch once the store has committed it (sinks, guards)."""

    def add_finish_hook(self, hook: Callable[[Any], None]) -> None:
        """Call ``hook(run)`` when the run finishes, before its store closes."""

    def add_signal_hook(self, hook: Any) -> None:
        """Tell ``hook`` about SIGTERM/SIGUSR1 before the run ends (a preemption save)."""

    def flush(self, timeout: float | None = None) -> bool:
        """Block until everything logged so far is stored; False on timeout."""

    def rewind(self, step: int) -> int:
        """Drop what was logged after ``step`` (a resume from an older checkpoint); the count dropped."""
