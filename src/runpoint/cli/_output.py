"""What every command shares: the root option, one-line errors, JSON and number formatting."""

from __future__ import annotations

import functools
import math
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Callable, TypeVar

import typer
from rich.console import Console

from .._util.jsonable import dumps
from ..errors import ConfigError, RunpointError
from ._oserror import describe

console = Console(highlight=False, soft_wrap=False)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

def _root_or_url(value: str) -> Path:
    """A directory, or a store URL kept as it was typed (a Path would fold ``postgresql://`` into ``postgresql:/``)."""
    return value if "://" in value else Path(value)  # type: ignore[return-value]


RootOption = Annotated[
    Path | None,
    typer.Option("--root", "-r", help="Where runs live: a directory, or a store URL (postgresql://...) to read. "
                 "Default: $RUNPOINT_ROOT, else ./runpoint.", show_default=False, parser=_root_or_url),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]

F = TypeVar("F", bound=Callable[..., Any])

STATUS_STYLE = {
    "running": "bold cyan",
    "completed": "green",
    "failed": "bold red",
    "killed": "yellow",
    "crashed": "bold magenta",
}


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``runpoint: <message>`` on stderr and return the Exit to raise."""
    err_console.print(f"runpoint: {message}", markup=False)
    return typer.Exit(code)


def friendly_errors(command: F) -> F:
    """Turn runpoint's errors, and OSErrors about paths, into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as exc:
            err_console.print(f"runpoint: {exc}", markup=False)
            raise typer.Exit(1) from None
        except RunpointError as exc:
            raise fail(str(exc).splitlines()[0]) from None
        except (BrokenPipeError, KeyboardInterrupt):
            sys.stderr.close()  # `runpoint ... | head` and Ctrl-C end quietly
            raise typer.Exit(130) from None
        except OSError as exc:  # a path that cannot be written or read: one line, not a traceback
            if exc.errno is None:
                raise
            raise fail(describe(exc, verb="use")) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: Any) -> None:
    sys.stdout.write(dumps(data) + "\n")


def fmt_number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    return str(value)


def fmt_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def fmt_age(timestamp: float) -> str:
    seconds = max(0.0, time.time() - timestamp)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]"
