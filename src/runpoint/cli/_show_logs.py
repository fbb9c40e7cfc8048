"""``runpoint show RUN --console`` / ``--runpoint-log``: a run's captured output and runpoint's own events.

The console logs are read across their segments (``console.log.1.zst``...), oldest first,
cleaned of colours and carriage-return redraws as a terminal would have shown them;
``runpoint.log`` is shown one event a line (``--json`` keeps its JSON lines).
"""

from __future__ import annotations

import sys

from .. import query
from ..logs.events_text import readable_event
from ..logs.segments import (
    RUNPOINT_LOG_NAME,
    LocalLogFolder,
    iter_log,
    logical_logs,
    tail_lines,
)
from ..run.console import clean_console
from ..store import RunRecord, Store
from ._output import err_console, fail


def _folder(store: Store, run: RunRecord) -> LocalLogFolder:
    if "://" in store.location:
        raise fail(f"run {run.id}'s logs are on the server: read them in its dashboard (Console tab), "
                   "or with --root pointing at a local copy")
    return LocalLogFolder(query.run_dir(store, run) / "logs")


def print_console(store: Store, run: RunRecord, lines: int | None) -> None:
    """Every console log of ``run`` in the order written (the last ``lines`` lines of each when given)."""
    folder = _folder(store, run)
    names = logical_logs(folder.sizes())
    if not names:
        err_console.print(f"run {run.id} captured no console output", markup=False)
        return
    for name in names:
        if len(names) > 1:
            err_console.print(f"== logs/{name} ==", markup=False)
        if lines is not None:
            sys.stdout.write(clean_console(tail_lines(folder, name, lines)) + "\n")
            continue
        carry = b""
        for chunk in iter_log(folder, name):  # whole lines at a time: memory stays flat
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            sys.stdout.write(clean_console(data[:cut].decode("utf-8", "replace")))
        if carry:
            sys.stdout.write(clean_console(carry.decode("utf-8", "replace")) + "\n")
    sys.stdout.flush()


def print_runpoint_log(store: Store, run: RunRecord, lines: int | None, as_json: bool) -> None:
    """runpoint's own events of ``run`` (every rank's file), one a line."""
    folder = _folder(store, run)
    names = sorted(name for name in folder.sizes() if RUNPOINT_LOG_NAME.match(name))
    if not names:
        err_console.print(f"run {run.id} has no runpoint.log (runs recorded before runpoint kept one have none)", markup=False)
        return
    for name in names:
        if len(names) > 1:
            err_console.print(f"== logs/{name} ==", markup=False)
        with folder.open(name) as handle:
            text = handle.read().decode("utf-8", "replace")
        shown = text.splitlines()[-lines:] if lines is not None else text.splitlines()
        for line in shown:
            sys.stdout.write((line if as_json else readable_event(line)) + "\n")
    sys.stdout.flush()
