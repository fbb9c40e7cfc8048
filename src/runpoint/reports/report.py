"""``runpoint report RUN``: one run on one page, as self-contained HTML and as Markdown.

Sections: the run (status, times, host, tags, notes, error), summary (values set on
``run.summary`` and where the NaN guard fired), best metrics (best value and step of
every metric with a known direction, see :func:`runpoint.query.analysis.best_metrics`), final
metrics, plots (the training overview, gradient diagnostics and system metrics when the
run logged them), media (the latest value of each media key), checkpoints (the registry,
when the run saved any), config, metadata, and the tail of the console log.

The HTML needs nothing else: styles are inline and images are ``data:`` URIs. The
Markdown links its images, written beside it into ``<name>_files/``.

The blocks a section is made of are in ``_content``, the sections themselves in ``_sections``.

Example::

    files = write_report(store, run, "reports/")
    print(files.html, files.markdown)
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from .._util.fs import require_parent_dir, write_atomic
from ..errors import InvalidArgumentError
from ..store import RunRecord, Store
from ._content import (
    Block,
    Figure,
    KeyValues,
    Note,
    Pre,
    Report,
    Section,
    Table,
    fmt,
)
from ._sections import report_sections

__all__ = [
    "Block", "Figure", "KeyValues", "Note", "Pre", "Report", "ReportFiles", "Section", "Table",
    "build_report", "fmt", "image_data_uri", "write_report",
]


@dataclass(frozen=True)
class ReportFiles:
    """Where :func:`write_report` put the report."""

    html: Path
    markdown: Path
    images: list[Path]


def build_report(store: Store, run: RunRecord, *, console_lines: int = 50, smoothing: float = 0.6) -> Report:
    """Collect everything the report shows."""
    if isinstance(console_lines, bool) or not isinstance(console_lines, int) or console_lines < 0:
        raise InvalidArgumentError("console_lines", f"must be a non-negative int, got {console_lines!r}")
    sections = report_sections(store, run, console_lines=console_lines, smoothing=smoothing)
    return Report(
        title=f"{run.name}", subtitle=f"run {run.id} · project {run.project}",
        status=run.status.value, sections=sections,
    )


def write_report(
    store: Store, run: RunRecord, out: str | os.PathLike[str] | None = None, *,
    console_lines: int = 50, smoothing: float = 0.6,
) -> ReportFiles:
    """Write ``<name>.html``, ``<name>.md`` and the Markdown's images.

    ``out`` is a ``.html`` file (the Markdown goes beside it) or a directory (the files
    are named ``report-<run id>``); default: the working directory.
    """
    from .render import to_html, to_markdown

    target = Path(out) if out is not None else Path(".")
    if target.suffix.lower() in (".html", ".htm"):
        html_path = target
    elif target.suffix:
        raise InvalidArgumentError("out", f"{target.name!r}: give a .html file or a directory")
    else:
        target.mkdir(parents=True, exist_ok=True)
        html_path = target / f"report-{run.id}.html"
    require_parent_dir(html_path)
    report = build_report(store, run, console_lines=console_lines, smoothing=smoothing)
    markdown_path = html_path.with_suffix(".md")
    files_dir = html_path.with_name(f"{html_path.stem}_files")
    images: list[Path] = []
    for section in report.sections:
        for block in section.blocks:
            if isinstance(block, Figure):
                files_dir.mkdir(exist_ok=True)
                image = files_dir / f"{block.name}.png"
                write_atomic(image, block.png)
                images.append(image)
    write_atomic(html_path, to_html(report))
    write_atomic(markdown_path, to_markdown(report, f"{files_dir.name}/"))
    return ReportFiles(html=html_path, markdown=markdown_path, images=images)


def image_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
