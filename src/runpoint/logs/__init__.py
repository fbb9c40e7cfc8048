"""runpoint's own logs: structured diagnostics, each run's ``logs/runpoint.log``, console segments, redaction.

- :mod:`.stderr`: the one handler on the ``runpoint`` logger (human lines, or JSON with
  ``RUNPOINT_LOG_FORMAT=json``; ``RUNPOINT_LOG_LEVEL``).
- :mod:`.run_log`: ``logs/runpoint.log`` per run, and :func:`emit` (a record with an
  ``event`` name and structured fields).
- :mod:`.formats`: :class:`JsonFormatter` (use it in your own logging config too).
- :mod:`.segments` / :mod:`.rotation`: console logs in zstd-compressed segments.
- :mod:`.redact`: secrets redacted before anything is written.

Example::

    import logging, runpoint.logs
    logging.getLogger("runpoint").addHandler(handler := logging.FileHandler("runpoint.jsonl"))
    handler.setFormatter(runpoint.logs.JsonFormatter())
"""

from __future__ import annotations

from .formats import HumanFormatter, JsonFormatter
from .redact import Redactor
from .run_log import close_run_log, emit, open_run_log
from .stderr import install

__all__ = ["HumanFormatter", "JsonFormatter", "Redactor", "close_run_log", "emit", "install", "open_run_log"]
