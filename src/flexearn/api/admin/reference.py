"""The admin API's reference page (/admin/v1/docs): its OpenAPI document rendered on the server
as one HTML page, with no script and nothing fetched, so it works with no network at run time
and nothing is vendored. The document stays the single source: the page is built from it."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

_CODE = re.compile(r"`([^`]+)`")
MAX_DEPTH = 6  # nested object schemas shown inline; deeper ones would be a mistake in the document

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;margin:0;color:#1d2430;background:#f7f8fa}
main{max-width:960px;margin:0 auto;padding:1.5rem}
header{background:#1d2430;color:#fff;padding:1.2rem 1.5rem}header h1{margin:0;font-size:1.4rem}
header p{max-width:960px;margin:.4rem 0 0;color:#c9d1dc}header code{background:#33405a;color:#fff}
nav ul{columns:2;padding-left:1.2rem}section.op{background:#fff;border:1px solid #dde2e8;
border-radius:6px;padding:.8rem 1rem;margin:1rem 0}h2{margin-top:2rem;text-transform:capitalize}
h3{margin:.2rem 0;font-size:1rem;font-family:ui-monospace,monospace}.m{display:inline-block;
min-width:3.6rem;padding:0 .4rem;border-radius:4px;color:#fff;text-align:center;margin-right:.4rem}
.get{background:#2f6fb3}.post{background:#2e8b57}.put{background:#b8860b}.delete{background:#b33a3a}
.patch{background:#7a4fb3}table{border-collapse:collapse;width:100%;margin:.3rem 0}
td,th{border-top:1px solid #e6e9ee;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600;font-size:.85rem;color:#4a5565}code{font:13px ui-monospace,monospace;
background:#eef1f5;padding:0 .2rem;border-radius:3px}ul.s{margin:.1rem 0;padding-left:1.1rem}
.req{color:#b33a3a}.dim{color:#6a7485}@media(max-width:600px){nav ul{columns:1}}
"""


def page(document: Mapping[str, Any], openapi_url: str) -> str:
    """The whole page: the API's description, a contents list, each operation by tag, and the
    schemas its answers refer to."""
    info = document["info"]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            by_tag.setdefault(operation["tags"][0], []).append((path, method, operation))
    server = document["servers"][0]["url"]
    contents = "".join(
        f'<li><a href="#tag-{_e(tag)}">{_e(tag)}</a> ({len(ops)})</li>' for tag, ops in by_tag.items()
    )
    sections = "".join(
        f'<h2 id="tag-{_e(tag)}">{_e(tag)}</h2>' + "".join(_operation(server, *op) for op in ops)
        for tag, ops in by_tag.items()
    )
    schemas = "".join(
        f'<section class="op" id="schema-{_e(name)}"><h3>{_e(name)}</h3>{_schema(schema)}</section>'
        for name, schema in document["components"]["schemas"].items()
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(info['title'])}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>{_e(info['title'])} <span class=dim>v{_e(info['version'])}</span></h1>"
        f"<p>{_text(info.get('description', ''))}</p></header><main>"
        f'<p>The machine-readable document: <a href="{_e(openapi_url)}">{_e(openapi_url)}</a> '
        f"(OpenAPI {_e(document['openapi'])}).</p>"
        f"<nav><h2>Contents</h2><ul>{contents}"
        f'<li><a href="#schemas">schemas</a></li></ul></nav>{sections}'
        f'<h2 id="schemas">Schemas</h2>{schemas}</main></body></html>'
    )


def _operation(server: str, path: str, method: str, operation: Mapping[str, Any]) -> str:
    parameters = operation.get("parameters", [])
    rows = "".join(
        f"<tr><td><code>{_e(p['name'])}</code>{' <span class=req>*</span>' if p.get('required') else ''}"
        f"</td><td>{_e(p['in'])}</td><td>{_schema(p['schema'])}{_note(p)}</td></tr>"
        for p in parameters
    )
    body = operation.get("requestBody")
    responses = "".join(
        f"<tr><td>{_e(status)}</td><td>{_e(response['description'])}</td>"
        f"<td>{_schema(response['content']['application/json']['schema'])}</td></tr>"
        for status, response in operation["responses"].items()
    )
    return (
        f'<section class="op" id="{_e(operation["operationId"])}">'
        f'<h3><span class="m {_e(method)}">{_e(method.upper())}</span>{_e(server + path)}</h3>'
        f"<p>{_text(operation.get('summary', ''))} "
        f"<span class=dim>({_e(operation['operationId'])})</span></p>"
        + (f"<table><tr><th>parameter</th><th>in</th><th>schema</th></tr>{rows}</table>" if rows else "")
        + (
            f"<p><b>Body</b> (application/json)</p>{_schema(body['content']['application/json']['schema'])}"
            if body
            else ""
        )
        + f"<table><tr><th>status</th><th>meaning</th><th>answer</th></tr>{responses}</table></section>"
    )


def _schema(schema: Mapping[str, Any], depth: int = 0) -> str:
    """A schema as a person reads it: a link for a reference, an object as a list of its
    properties, else its type with its bounds."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{_e(name)}">{_e(name)}</a>'
    if "anyOf" in schema:
        return " or ".join(_schema(s, depth) for s in schema["anyOf"])
    if "properties" in schema and depth < MAX_DEPTH:
        required = set(schema.get("required", []))
        items = "".join(
            f"<li><code>{_e(name)}</code>{' <span class=req>*</span>' if name in required else ''}: "
            f"{_schema(sub, depth + 1)}{_description(sub)}</li>"
            for name, sub in schema["properties"].items()
        )
        return f'object<ul class="s">{items}</ul>'
    kind = schema.get("type", "any")
    text = _e(" or ".join(kind) if isinstance(kind, list) else kind)
    if "items" in schema:
        text = f"array of {_schema(schema['items'], depth + 1)}"
    details = [
        f"{label} {_e(_plain(schema[key]))}"
        for key, label in (
            ("enum", "one of"),
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("maxItems", "items ≤"),
            ("pattern", "matching"),
            ("examples", "e.g."),
        )
        if key in schema
    ]
    return text + (f" <span class=dim>({'; '.join(details)})</span>" if details else "")


def _note(parameter: Mapping[str, Any]) -> str:
    return f"<br>{_text(parameter['description'])}" if parameter.get("description") else ""


def _description(schema: Mapping[str, Any]) -> str:
    return f" — {_text(schema['description'])}" if schema.get("description") else ""


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _e(value: object) -> str:
    return html.escape(str(value))


def _text(value: str) -> str:
    """Prose with its `code` spans."""
    return _CODE.sub(r"<code>\1</code>", _e(value))
