"""How runpoint's log records are written: human lines, or one JSON object per line.

Records carry structured fields in ``extra`` (``run_id``, ``event``, ``step``, ``path``,
``seconds``...). :class:`JsonFormatter` writes them next to ``ts``, ``level``, ``logger``,
``event`` and ``message``; use it with your own handlers too::

    handler = logging.StreamHandler()
    handler.setFormatter(runpoint.logs.JsonFormatter())
    logging.getLogger("runpoint").addHandler(handler)
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime, timezone
from typing import Any, Callable

# what every LogRecord has: anything else on a record came from ``extra``
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record was given through ``extra``."""
    return {key: value for key, value in vars(record).items() if key not in _STANDARD and not key.startswith("_")}


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC ISO 8601), ``level``, ``logger``, ``event``, ``message``, the fields.

    ``redact`` (a ``str -> str``) is applied to the message and the traceback.
    """

    def __init__(self, redact: Callable[[str], str] | None = None) -> None:
        super().__init__()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, "event", None) or _default_event(record),
            "message": message,
        }
        entry.update((key, _plain(value)) for key, value in fields_of(record).items() if key not in entry)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if self._redact is not None:
            entry["message"] = self._redact(entry["message"])
            if "exception" in entry:
                entry["exception"] = self._redact(entry["exception"])
        return json.dumps(entry, ensure_ascii=False)


def _default_event(record: logging.LogRecord) -> str:
    """Records without an ``event`` field: the logger's last part and the level (``runpoint.warning``)."""
    return f"{record.name}.{record.levelname.lower()}"


class HumanFormatter(logging.Formatter):
    """``runpoint: <message>`` and the traceback, as Python's last-resort handler wrote them before."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if text.startswith("runpoint") else f"runpoint: {text}"
