"""Where this process stands in a multi-rank job, and the few collectives runpoint needs.

Both runs (one run per job, :mod:`runpoint.run.start`) and checkpoints (sharded saves,
:mod:`runpoint.checkpoint`) ask the same questions: which rank is this, how many are
there, is a process group up to talk over. :func:`current` answers them from
``torch.distributed`` when a group is initialized, else from the environment torchrun
sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``...). A plain process gets ``None``.

Example::

    ranks = current()
    if ranks is None or ranks.rank == 0:
        ...
"""

from .collectives import (
    active_group,
    all_gather_objects,
    barrier,
    broadcast_object,
    gather_objects,
    max_everywhere,
    over,
    same_everywhere,
    share_outcome,
)
from .context import RankContext, current
from .groups import CheckpointGroups, checkpoint_groups
from .rendezvous import arrivals, publish, receive

__all__ = [
    "CheckpointGroups",
    "RankContext",
    "active_group",
    "all_gather_objects",
    "arrivals",
    "barrier",
    "broadcast_object",
    "checkpoint_groups",
    "current",
    "gather_objects",
    "max_everywhere",
    "over",
    "publish",
    "receive",
    "same_everywhere",
    "share_outcome",
]
