"""Rendering a :class:`runpoint.reports.report.Report` as HTML and as Markdown.

Every piece of text from the run (names, notes, config values, console output) is escaped:
a report of someone else's run must not run their markup.
"""

from __future__ import annotations

import re
from html import escape

from ._content import Figure, KeyValues, Note, Pre, Report, Table
from .report import image_data_uri

_STYLE = """
body { font: 14px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1f2328;
       margin: 0; background: #f6f8fa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header .sub { color: #59636e; }
.status { display: inline-block; padding: 1px 10px; border-radius: 12px; font-size: 13px; font-weight: 600;
          vertical-align: middle; margin-left: 8px; background: #ddf4ff; color: #0969da; }
.status.completed { background: #dafbe1; color: #1a7f37; }
.status.failed, .status.crashed { background: #ffebe9; color: #cf222e; }
.status.killed { background: #fff8c5; color: #9a6700; }
nav { margin: 16px 0 8px; padding: 8px 0; border-top: 1px solid #d1d9e0; border-bottom: 1px solid #d1d9e0; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
section { margin-top: 28px; }
h2 { font-size: 19px; border-bottom: 1px solid #d1d9e0; padding-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 13px; }
th, td { border: 1px solid #d1d9e0; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
table.kv th { width: 220px; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; border: 1px solid #d1d9e0; border-radius: 6px; padding: 10px 12px; overflow-x: auto;
      font-size: 12px; line-height: 1.45; white-space: pre-wrap; word-break: break-word; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; border: 1px solid #d1d9e0; border-radius: 6px; }
figure img.logged { min-width: 192px; image-rendering: pixelated; }
figcaption { color: #59636e; font-size: 13px; margin-top: 4px; }
p.note { color: #3d444d; }
footer { margin-top: 40px; color: #818b98; font-size: 12px; }
"""


def _looks_numeric(text: str) -> bool:
    try:
        float(text.replace(",", ""))
    except ValueError:
        return text in {"NaN", "Infinity", "-Infinity"}
    return True


def _html_block(block: object) -> str:
    if isinstance(block, KeyValues):
        rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in block.rows)
        return f'<table class="kv">{rows}</table>'
    if isinstance(block, Table):
        head = "".join(f"<th>{escape(c)}</th>" for c in block.columns)
        body = "".join(
            "<tr>" + "".join(
                f'<td class="num">{escape(cell)}</td>' if _looks_numeric(cell) else f"<td>{escape(cell)}</td>"
                for cell in row
            ) + "</tr>"
            for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Figure):
        kind = ' class="logged"' if block.logged else ""
        return (f'<figure><img{kind} src="{image_data_uri(block.png)}" alt="{escape(block.caption)}">'
                f"<figcaption>{escape(block.caption)}</figcaption></figure>")
    if isinstance(block, Pre):
        return f"<pre>{escape(block.text)}</pre>"
    if isinstance(block, Note):
        return f'<p class="note">{escape(block.text)}</p>'
    raise TypeError(f"unknown report block {block!r}")


def to_html(report: Report) -> str:
    """One self-contained HTML page."""
    nav = "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in report.sections)
    sections = "\n".join(
        f'<section id="{s.anchor}"><h2>{escape(s.title)}</h2>\n' + "\n".join(_html_block(b) for b in s.blocks)
        + "</section>"
        for s in report.sections
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(report.title)} · runpoint report</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<header><h1>{escape(report.title)}<span class="status {escape(report.status)}">{escape(report.status)}</span></h1>
<div class="sub">{escape(report.subtitle)}</div></header>
<nav>{nav}</nav>
{sections}
<footer>Written by runpoint.</footer>
</main>
</body>
</html>
"""


def _md_text(text: str) -> str:
    """Text from a run (names, config values, captions) as inert Markdown: no HTML gets through."""
    return escape(text, quote=False)


def _md_cell(text: str) -> str:
    return _md_text(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", "<br>")


def _md_block(block: object, image_prefix: str) -> str:
    if isinstance(block, KeyValues):
        return "| | |\n|---|---|\n" + "\n".join(f"| **{_md_cell(k)}** | {_md_cell(v)} |" for k, v in block.rows)
    if isinstance(block, Table):
        head = "| " + " | ".join(_md_cell(c) for c in block.columns) + " |"
        rule = "|" + "|".join("---" for _ in block.columns) + "|"
        rows = ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in block.rows]
        return "\n".join([head, rule, *rows])
    if isinstance(block, Figure):
        return f"![{_md_cell(block.caption)}]({image_prefix}{block.name}.png)\n\n*{_md_cell(block.caption)}*"
    if isinstance(block, Pre):
        longest = max((len(run) for run in re.findall(r"`+", block.text)), default=0)
        fence = "`" * max(3, longest + 1)  # a fence the text cannot close
        return f"{fence}text\n{block.text}\n{fence}"
    if isinstance(block, Note):
        return _md_text(block.text)
    raise TypeError(f"unknown report block {block!r}")


def to_markdown(report: Report, image_prefix: str) -> str:
    """The report as Markdown; images are linked as ``<image_prefix><name>.png``."""
    parts = [f"# {_md_text(report.title)} ({report.status})", _md_text(report.subtitle)]
    for section in report.sections:
        parts.append(f"## {_md_text(section.title)}")
        parts.extend(_md_block(block, image_prefix) for block in section.blocks)
    return "\n\n".join(parts) + "\n"
