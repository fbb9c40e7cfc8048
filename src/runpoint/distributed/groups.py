"""Process groups of runpoint's own, so its collectives never interleave with training's.

A DDP job all-reduces gradients over the default group while an async checkpoint save
commits on a background thread; if both used the default group, the ranks could issue
them in different orders and pair one rank's gradient all-reduce with another's gather.
:func:`checkpoint_groups` creates (once per default group) two gloo groups over every
rank: ``data`` for the saves and restores (DCP and runpoint's gathers), ``signals`` for
the preemption flag that the training thread all-reduces while a save is in flight.
Creating them is itself a collective over the default group: every rank must get here.

Example::

    groups = checkpoint_groups()
    with over(groups.data):
        dcp.save(state, process_group=groups.data)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

_lock = threading.Lock()
_cache: dict[int, "CheckpointGroups"] = {}


@dataclass(frozen=True)
class CheckpointGroups:
    data: Any  # saves and restores
    signals: Any  # the preemption flag, all-reduced by the training thread


def checkpoint_groups() -> CheckpointGroups:
    """The gloo groups checkpoints use in this job (created at the first call, on every rank)."""
    import torch.distributed as dist

    world = dist.group.WORLD  # a new default group (after destroy/init) gets new groups
    with _lock:
        groups = _cache.get(id(world))
        if groups is None:
            groups = CheckpointGroups(data=dist.new_group(backend="gloo"), signals=dist.new_group(backend="gloo"))
            _cache.clear()
            _cache[id(world)] = groups
        return groups
