"""``CheckpointOptions``: everything a :class:`~runpoint.CheckpointManager` is told, as one frozen value.

The manager's keywords (``keep_last=3, monitor="val/loss"``...) are the short form and
become one of these through :meth:`CheckpointOptions.from_keywords`, which is where every
keyword is checked. In the dataclass itself the choices that used to exclude each other
at run time cannot be combined: retention is one :class:`~runpoint.checkpoint.RetentionPolicy`
(the ``keep_*`` keywords build one), compression belongs to the IO object, and a
directory of its own is a field of the run's options, not a second positional meaning.

Example::

    from runpoint.checkpoint import AnyOf, BestN, CheckpointOptions, LatestN, SaveEveryNSteps

    options = CheckpointOptions(
        retention=AnyOf((LatestN(3), BestN(1, "val/loss", "min"))),
        triggers=(SaveEveryNSteps(500),),
    )
    ckpt = rp.CheckpointManager(run, options)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping, TypedDict

from ..errors import InvalidArgumentError
from ._checks import best_policy
from .io import CheckpointIO, SafetensorsIO
from .policy import (
    KeepAll,
    Mode,
    RetentionPolicy,
    SaveTrigger,
    retention_from_keywords,
    save_triggers,
)

if TYPE_CHECKING:
    from ..handle import RunHandle
    from .keys import EncryptionKey


class CheckpointKeywords(TypedDict, total=False):
    """The short keyword form of :class:`CheckpointOptions` that ``CheckpointManager`` accepts.

    - ``keep_last``: keep the N most recent checkpoints.
    - ``keep_best``: keep the N best by ``monitor``; ``save`` then needs that metric.
    - ``monitor``, ``mode``: the metric that ranks checkpoints, and whether lower
      (``"min"``) or higher (``"max"``) is better. The best is never deleted.
    - ``keep_every_n_steps``: also keep every checkpoint whose step is a multiple of N.
    - ``save_every_n_steps``, ``save_every_seconds``: what ``should_save`` answers.
    - ``async_save``: ``save`` copies the state to host memory and returns; a thread writes.
    - ``fmt``: the on-disk format; ``"safetensors"`` (tensors) plus msgpack (the rest).
    - ``compress``: ``"zstd"`` to compress the files.
    - ``rng``: save and restore the Python, NumPy, torch and CUDA generator states.
    - ``directory``: with a run, put its checkpoints here instead (e.g. an ``s3://`` URL).
    - ``storage_options``: fsspec options for URLs (``{"endpoint_url": ...}``, credentials).
    - ``retention``: a :mod:`~runpoint.checkpoint.policy` object, instead of the keep_ keywords.
    - ``io``: a :class:`~runpoint.checkpoint.io.CheckpointIO` to read and write the files.
    - ``encrypt``: an :class:`~runpoint.EncryptionKey`: files are sealed with AES-256-GCM and
      restoring needs the same key (see "Encrypted checkpoints" in docs/checkpoints.md).
    """

    keep_last: int | None
    keep_best: int | None
    monitor: str | None
    mode: Mode
    keep_every_n_steps: int | None
    save_every_n_steps: int | None
    save_every_seconds: float | None
    async_save: bool
    fmt: str
    compress: str | None
    rng: bool
    directory: str | os.PathLike[str] | None
    storage_options: Mapping[str, Any] | None
    retention: RetentionPolicy | None
    io: CheckpointIO | None
    encrypt: "EncryptionKey | None"


@dataclass(frozen=True)
class CheckpointOptions:
    """What to keep, when to save, how to write, and where.

    Attributes:
        retention: which checkpoints survive a save (default: all).
        monitor, mode: the metric that ranks checkpoints for the ``best`` pointer; by
            default the one of a :class:`~runpoint.checkpoint.BestN` inside ``retention``.
        triggers: what :meth:`~runpoint.CheckpointManager.should_save` asks.
        io: how a checkpoint's files are written and read (compression is its option).
        async_save: ``save`` copies the state to host memory and a thread writes it.
        rng: save and restore the Python, NumPy, torch and CUDA generator states.
        location: with a run, put its checkpoints here instead of its ``checkpoints/``.
        storage_options: fsspec options for a URL location (endpoint, credentials).
        encrypt: the key to seal the files with (AES-256-GCM); ``io`` then seals with it.
    """

    retention: RetentionPolicy = field(default_factory=KeepAll)
    monitor: str | None = None
    mode: Mode = "min"
    triggers: tuple[SaveTrigger, ...] = ()
    io: CheckpointIO = field(default_factory=SafetensorsIO)
    async_save: bool = False
    rng: bool = True
    location: str | os.PathLike[str] | None = None
    storage_options: Mapping[str, Any] | None = None
    encrypt: "EncryptionKey | None" = None

    def __post_init__(self) -> None:
        if not isinstance(self.retention, RetentionPolicy):
            raise InvalidArgumentError("retention", f"{self.retention!r} has no keep(checkpoints) method")
        if self.monitor is not None and (not isinstance(self.monitor, str) or not self.monitor):
            raise InvalidArgumentError("monitor", f"must be a metric name, got {self.monitor!r}")
        ranking = best_policy(self.retention)
        if self.monitor is None and ranking is not None:
            object.__setattr__(self, "monitor", ranking.monitor)
            object.__setattr__(self, "mode", ranking.mode)
        if self.mode not in ("min", "max"):
            raise InvalidArgumentError("mode", f"must be 'min' or 'max', got {self.mode!r}")
        object.__setattr__(self, "triggers", tuple(self.triggers))
        if self.storage_options is not None:
            object.__setattr__(self, "storage_options", MappingProxyType(dict(self.storage_options)))
        if self.encrypt is not None:
            object.__setattr__(self, "io", _sealing_io(self.io, self.encrypt))
        elif getattr(self.io, "key", None) is not None:  # SafetensorsIO(encrypt=key) given as io
            object.__setattr__(self, "encrypt", self.io.key)  # type: ignore[attr-defined]

    @property
    def needs_monitor(self) -> bool:
        """True when retention ranks by a metric, so every ``save`` must report it."""
        return best_policy(self.retention) is not None

    def with_changes(self, **changes: Any) -> "CheckpointOptions":
        """A copy with some fields replaced (the dataclass is frozen)."""
        return replace(self, **changes)

    @classmethod
    def from_keywords(
        cls,
        *,
        keep_last: int | None = None,
        keep_best: int | None = None,
        monitor: str | None = None,
        mode: Mode = "min",
        keep_every_n_steps: int | None = None,
        save_every_n_steps: int | None = None,
        save_every_seconds: float | None = None,
        async_save: bool = False,
        fmt: str = "safetensors",
        compress: str | None = None,
        rng: bool = True,
        directory: str | os.PathLike[str] | None = None,
        storage_options: Mapping[str, Any] | None = None,
        retention: RetentionPolicy | None = None,
        io: CheckpointIO | None = None,
        encrypt: "EncryptionKey | None" = None,
    ) -> "CheckpointOptions":
        """The options of :class:`~runpoint.CheckpointManager`'s keywords, each checked with a clear error."""
        if fmt != "safetensors":
            raise InvalidArgumentError("fmt", f"{fmt!r} is not supported; checkpoints are 'safetensors' (never pickle)")
        if monitor is not None and (not isinstance(monitor, str) or not monitor):
            raise InvalidArgumentError("monitor", f"must be a metric name, got {monitor!r}")
        if retention is not None and any(k is not None for k in (keep_last, keep_best, keep_every_n_steps)):
            raise InvalidArgumentError("retention", "give retention= or keep_last/keep_best/keep_every_n_steps, not both")
        if io is not None and compress is not None:
            raise InvalidArgumentError("compress", "give it to your io object, not beside io=")
        if retention is None:
            retention = retention_from_keywords(keep_last, keep_best, monitor, mode, keep_every_n_steps)
        return cls(
            retention=retention, monitor=monitor, mode=mode,
            triggers=save_triggers(save_every_n_steps, save_every_seconds),
            io=io if io is not None else SafetensorsIO(compress), async_save=bool(async_save), rng=bool(rng),
            location=directory, storage_options=storage_options, encrypt=encrypt,
        )


def _sealing_io(io: CheckpointIO, key: "EncryptionKey") -> CheckpointIO:
    """``io`` sealing with ``key``: the key goes to the IO, which is where files are written."""
    if getattr(io, "key", None) is key:
        return io
    if not isinstance(io, SafetensorsIO):
        raise InvalidArgumentError("encrypt", f"needs the default SafetensorsIO; {type(io).__qualname__} "
                                              "writes its files itself (give it the key, if it can take one)")
    return io.with_key(key)


def options_from_keywords(keywords: CheckpointKeywords) -> CheckpointOptions:
    """:meth:`CheckpointOptions.from_keywords`, with a TypeError naming an unknown keyword."""
    unknown = sorted(set(keywords) - set(CheckpointKeywords.__annotations__))
    if unknown:
        raise TypeError(f"CheckpointManager() got an unexpected keyword argument {unknown[0]!r}; "
                        f"it takes {', '.join(CheckpointKeywords.__annotations__)}")
    return CheckpointOptions.from_keywords(**keywords)


def run_and_location(run_or_directory: Any, location: Any) -> "tuple[RunHandle | None, Any]":
    """The run (or None) a manager serves, and where its checkpoints go."""
    if isinstance(run_or_directory, (str, os.PathLike)):
        if location is not None:
            raise InvalidArgumentError("directory", "only goes with a run; give the directory as the first argument")
        return None, run_or_directory
    from ..handle import RunHandle

    if not isinstance(run_or_directory, RunHandle):
        raise InvalidArgumentError(
            "run_or_directory", f"must be a run from rp.init() or a directory, not {type(run_or_directory).__qualname__}"
        )
    return run_or_directory, location if location is not None else run_or_directory.dir / "checkpoints"
