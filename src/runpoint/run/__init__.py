"""The write path of one run: ``rp.init`` makes a :class:`Run`, which coordinates a
background writer, the summary, console capture, metadata, liveness and the lifecycle.

Users reach it as ``rp.init`` and ``rp.Run``; the modules here are internal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._util.lazy import lazy_attributes

_LAZY = {"Run": ".run", "init": ".start"}
__all__ = ["Run", "init"]
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, set(), __all__)

if TYPE_CHECKING:
    from .run import Run
    from .start import init
