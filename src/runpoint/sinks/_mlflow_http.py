"""Bounds on the MLflow client's own HTTP retries, on the MLflow sink's threads only.

MLflow retries a failed request up to 7 times with doubling waits, and waits 120 s for an
answer: one call can take minutes. runpoint gives up on a call after ``call_timeout``,
but MLflow's retries go on in the abandoned thread and send stale points minutes later.
While a sink call runs, its thread gets bounds that end every call within
``call_timeout``; runpoint's own retries (:class:`~runpoint.sinks.SinkOptions`) do the
rest. Variables the user set in the environment win; other threads see MLflow's defaults.
"""

from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Any, Iterator

MAX_RETRIES = 2
BACKOFF_FACTOR = 0.5
BACKOFF_JITTER = 0.5

_scope = threading.local()
_installed = False
_install_lock = threading.Lock()


def limits(call_timeout: float) -> dict[str, float]:
    """The bounds for a sink whose calls may take ``call_timeout`` seconds: 3 tries fit in it."""
    return {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": MAX_RETRIES,
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": BACKOFF_FACTOR,
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": BACKOFF_JITTER,
        "MLFLOW_HTTP_REQUEST_TIMEOUT": max(1, min(120, int(call_timeout / (MAX_RETRIES + 2)))),
    }


def _install() -> None:
    """Make MLflow's retry settings read this thread's bounds, if it has some (once per process)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from mlflow import environment_variables as variables

        for name in limits(60):
            variable = getattr(variables, name, None)
            if variable is None:  # another MLflow version: leave its defaults
                continue
            variable.get = _bounded_get(variable, variable.get)
        _installed = True


def _bounded_get(variable: Any, original: Any) -> Any:
    def get() -> Any:
        bounds = getattr(_scope, "bounds", None)
        if bounds is not None and variable.name in bounds and variable.name not in os.environ:
            return bounds[variable.name]
        return original()

    return get


@contextmanager
def bounded(bounds: dict[str, float]) -> Iterator[None]:
    """MLflow requests made on this thread inside the block use ``bounds``."""
    _install()
    previous = getattr(_scope, "bounds", None)
    _scope.bounds = bounds
    try:
        yield
    finally:
        _scope.bounds = previous
