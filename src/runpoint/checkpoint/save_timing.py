"""How long checkpoint saves take, recorded on the run as the internal metric ``checkpoint/save_seconds``.

One point per committed checkpoint, at the checkpoint's step: the seconds from the start
of writing its files to its commit (on the background thread for ``async_save``, so the
time the training loop waited for the host copy is not in it). The dashboard charts it
like any metric; ``/metrics`` exposes its last value and count to Prometheus. Only the
process that coordinates the checkpoint directory (rank 0) records it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..handle import RunHandle

SAVE_SECONDS = "checkpoint/save_seconds"

logger = logging.getLogger("runpoint.checkpoint")


def record_save_seconds(run: "RunHandle | None", step: int, started: float, *, coordinates: bool) -> None:
    """Log ``time.monotonic() - started`` as the save time of the checkpoint of ``step``; never raises."""
    if run is None or not coordinates:
        return
    try:
        run.log_internal({SAVE_SECONDS: time.monotonic() - started}, step)
    except Exception as exc:  # a timing is never worth a failed save
        logger.debug("runpoint: could not record the checkpoint save time: %s", exc)
