"""``/api/docs``: the API reference as one self-contained HTML page, readable offline.

FastAPI's default docs page loads Swagger UI from a CDN and is blank without a network;
this page is built from the OpenAPI description on the server and loads nothing.
"""

from __future__ import annotations

from html import escape
from typing import Any

_METHODS = ("get", "post", "put", "patch", "delete")

_STYLE = """
body { font: 14px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1rem; margin: 1.6rem 0 .2rem; font-family: ui-monospace, monospace; }
.method { display: inline-block; min-width: 4.5em; font-weight: bold; }
.get { color: #0a6; } .post { color: #06c; } .put, .patch { color: #a60; } .delete { color: #c03; }
table { border-collapse: collapse; margin: .3rem 0; } td, th { padding: .1rem .8rem .1rem 0; text-align: left; vertical-align: top; }
code { font-family: ui-monospace, monospace; } .muted { color: #666; }
"""


def _type_of(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_type_of(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list[{_type_of(schema.get('items') or {})}]"
    return str(schema.get("type", "any"))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f'<h2><span class="method {method}">{method.upper()}</span> {escape(path)}</h2>']
    summary = op.get("summary") or ""
    description = op.get("description") or ""
    if summary:
        parts.append(f"<p><b>{escape(summary)}</b></p>")
    if description and description != summary:
        parts.append(f'<p class="muted">{escape(description)}</p>'.replace("\n\n", "<br>"))
    params = op.get("parameters") or []
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p.get('in', ''))}</td>"
            f"<td>{escape(_type_of(p.get('schema') or {}))}</td><td>{'required' if p.get('required') else ''}</td>"
            f"<td class=muted>{escape(p.get('description') or '')}</td></tr>"
            for p in params
        )
        parts.append(f"<table><tr><th>parameter</th><th>in</th><th>type</th><th></th><th></th></tr>{rows}</table>")
    body = ((op.get("requestBody") or {}).get("content") or {}).get("application/json")
    if body:
        parts.append(f"<p>JSON body: <code>{escape(_type_of(body.get('schema') or {}))}</code></p>")
    return "\n".join(parts)


def docs_html(spec: dict[str, Any], openapi_url: str) -> str:
    """The page for the OpenAPI description ``spec`` (linking to the JSON at ``openapi_url``)."""
    info = spec.get("info") or {}
    operations = [
        _operation(path, method, item[method])
        for path, item in sorted((spec.get("paths") or {}).items())
        for method in _METHODS
        if method in item
    ]
    title = escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{title}</h1><p>{escape(info.get('description') or '')} "
        f'The machine-readable description is <a href="{escape(openapi_url)}">{escape(openapi_url)}</a>.</p>'
        + "\n".join(operations)
        + "</body></html>"
    )
