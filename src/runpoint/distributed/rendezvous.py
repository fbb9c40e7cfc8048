"""Handing a value from rank 0 to the other ranks without a collective.

``rp.init`` and the first checkpoint save must not be collectives: a script (or an
integration such as Lightning's logger) that calls them on rank 0 alone would hang
forever in a broadcast the other ranks never join. Instead rank 0 *publishes* into the
process group's key-value store (the TCPStore every rank of a torchrun job shares; a
``set`` that does not wait for anyone) and the other ranks *receive* with a bounded wait.
If the other ranks never ask, nothing waits; if rank 0 never publishes, they fail with
a clear error after ``timeout`` seconds instead of hanging.

Example::

    if ranks.rank == 0:
        publish("init/1", {"run_id": run.id})
    else:
        run_id = receive("init/1", timeout=120)["run_id"]
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from ..errors import RunpointError

PREFIX = "runpoint/"


def _store() -> Any:
    import torch.distributed as dist
    from torch.distributed import distributed_c10d

    if not dist.is_initialized():
        raise RunpointError("this needs torch.distributed's process group: call torch.distributed.init_process_group first")
    return distributed_c10d._get_default_store()  # the store torchrun's ranks rendezvoused on


def publish(key: str, value: Any) -> None:
    """Make ``value`` (JSON-serialisable) available under ``key`` to every rank; returns at once."""
    _store().set(PREFIX + key, json.dumps(value))


def receive(key: str, timeout: float, waiting_for: str = "rank 0") -> Any:
    """The value published under ``key``; waits up to ``timeout`` seconds for it."""
    store = _store()
    try:
        store.wait([PREFIX + key], timedelta(seconds=timeout))
    except Exception as exc:  # DistStoreError / RuntimeError("Timeout") depending on the store
        raise RunpointError(f"waited {timeout:.0f} s for {waiting_for} ({key}) in vain: {exc}") from None
    return json.loads(store.get(PREFIX + key))


def arrivals(key: str, ranks: range, timeout: float) -> list[int]:
    """Which of ``ranks`` have published ``key/<rank>`` within ``timeout`` seconds (those missing, [] when all came)."""
    store = _store()
    wanted = [f"{PREFIX}{key}/{rank}" for rank in ranks]
    try:
        store.wait(wanted, timedelta(seconds=timeout))
        return []
    except Exception:
        return [rank for rank, name in zip(ranks, wanted) if not store.check([name])]
