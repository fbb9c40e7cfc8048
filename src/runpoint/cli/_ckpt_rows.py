"""The rows of `runpoint ckpt ls`: sizes, metrics, the table, and a team server run's checkpoints."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from rich.table import Table

from ._output import console, fmt_number, fmt_time, print_json


def size_text(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024  # type: ignore[assignment]
    return str(count)


def metrics_text(metrics: dict[str, float]) -> str:
    return "  ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={fmt_number(value)}"
                     for key, value in metrics.items())


def table() -> Table:
    """The empty table ``ckpt ls`` fills: step, saved, size, flags, metrics."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for heading in ("STEP", "SAVED", "SIZE", "", "METRICS"):
        table.add_column(heading, justify="right" if heading in {"STEP", "SIZE"} else "left", no_wrap=heading != "METRICS")
    return table


def ls_on_server(where: Any, show_all: bool, as_json: bool) -> None:
    """A server run's registry, with whether each checkpoint's manifest is on the server's object store."""
    from ..remote.files import RemoteFiles

    records = where.registry().list_checkpoints(where.run.id, include_deleted=show_all)
    with RemoteFiles(where.store.location) as files:
        there = {path for path, _ in files.list(where.run.id, "checkpoints/")}
    live = [r for r in records if r.deleted_at is None]
    latest = max((r.step for r in live), default=None)
    rows = [{"step": r.step, "path": r.path, "bytes": r.bytes, "created_at": r.created_at, "metrics": r.metrics,
             "best": r.is_best, "deleted": r.deleted_at is not None, "latest": r.step == latest,
             "on_disk": f"{r.path.rstrip('/')}/manifest.json" in there} for r in records]
    if as_json:
        return print_json({"directory": where.location, "run": where.run.id, "checkpoints": rows})
    console.print(f"[bold]run {escape(where.run.id)}: {escape(where.location)}[/]")
    rendered = table()
    for row in rows:
        flags = "[dim]deleted[/]" if row["deleted"] else " ".join(
            f for f, on in (("latest", row["latest"]), ("best", row["best"]), ("[bold red]missing[/]", not row["on_disk"])) if on)
        rendered.add_row(str(row["step"]), fmt_time(row["created_at"]), size_text(row["bytes"]), flags,
                         escape(metrics_text(row["metrics"])))
    console.print(rendered)
