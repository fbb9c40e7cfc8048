"""``runpoint.log``'s JSON lines as people read them: ``time  LEVEL  event  message  key=value ...``.

Example::

    readable_events('{"ts": "2025-01-01T10:00:00.000+00:00", "level": "INFO", "event": "run.start", "message": "..."}')
    # '2025-01-01 10:00:00.000  INFO     run.start  ...'
"""

from __future__ import annotations

import json

_SHOWN = {"ts", "level", "logger", "event", "message", "exception"}


def readable_event(line: str) -> str:
    """One JSON line as text; a line that is not JSON (cut short, damaged) as it is."""
    try:
        entry = json.loads(line)
    except ValueError:
        return line
    if not isinstance(entry, dict):
        return line
    when = str(entry.get("ts", "")).replace("T", " ")[:23]
    fields = "  ".join(f"{key}={value}" for key, value in entry.items() if key not in _SHOWN and value is not None)
    text = f"{when}  {str(entry.get('level', '')):<8} {entry.get('event', '')}  {entry.get('message', '')}"
    text += f"  ({fields})" if fields else ""
    if entry.get("exception"):
        text += "\n" + str(entry["exception"])
    return text


def readable_events(text: str) -> str:
    """Every JSON line of ``text`` as :func:`readable_event` writes it."""
    return "\n".join(readable_event(line) for line in text.splitlines() if line.strip())
