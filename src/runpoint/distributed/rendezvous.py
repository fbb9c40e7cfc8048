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
import time
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


def _wait_for(store: Any, names: list[str], timeout: float) -> list[str]:
    """Poll until every name is set or ``timeout`` passes; the names still missing.

    Polls with ``check`` rather than ``store.wait(timeout)``: a wait that times out has
    the C++ side print socket warnings on stderr, and not every rank arriving is normal.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        missing = [name for name in names if not store.check([name])]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.05)


def receive(key: str, timeout: float, waiting_for: str = "rank 0") -> Any:
    """The value published under ``key``; waits up to ``timeout`` seconds for it."""
    store = _store()
    if _wait_for(store, [PREFIX + key], timeout):
        raise RunpointError(f"waited {timeout:.0f} s for {waiting_for} ({key}) in vain")
    return json.loads(store.get(PREFIX + key))


def arrivals(key: str, ranks: range, timeout: float) -> list[int]:
    """Which of ``ranks`` have not published ``key/<rank>`` within ``timeout`` seconds ([] when all came)."""
    wanted = {f"{PREFIX}{key}/{rank}": rank for rank in ranks}
    return [wanted[name] for name in _wait_for(_store(), list(wanted), timeout)]
