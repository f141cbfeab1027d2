"""The API's reference page at /api/v1/docs, rendered here from the OpenAPI document.

No external assets and no scripts: the page is plain HTML from the same
specification that /api/v1/openapi.json serves.
"""

from __future__ import annotations

import json
import re

from flask import Blueprint, current_app, render_template

from ..security import public

bp = Blueprint("api_pages", __name__, url_prefix="/api/v1")

METHOD_ORDER = ["get", "post", "patch", "put", "delete"]


# `code` or **bold** inside a paragraph.
INLINE = re.compile(r"`([^`]+)`|\*\*(.+?)\*\*")


def markdown(text: str | None) -> list[list[tuple[str, str]]]:
    """The little Markdown the API's descriptions use, as paragraphs of (kind, text) parts.

    Kinds are `text`, `code` and `strong`; the template wraps each part in its tag
    and escapes the text, so nothing here is marked safe.
    """
    paragraphs = []
    for block in re.split(r"\n\s*\n", text or ""):
        block = block.strip()
        if not block:
            continue
        parts, at = [], 0
        for match in INLINE.finditer(block):
            if match.start() > at:
                parts.append(("text", block[at : match.start()]))
            parts.append(("code", match[1]) if match[1] is not None else ("strong", match[2]))
            at = match.end()
        if at < len(block):
            parts.append(("text", block[at:]))
        paragraphs.append(parts)
    return paragraphs


# Example values for a curl command, by type.
EXAMPLES = {"string": "text", "integer": 1, "number": 1.0, "boolean": False}


def example_body(spec: dict, schema: dict | None) -> dict | None:
    """A request body with every required field (or every field, if none is required)."""
    if not schema:
        return None
    if "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    properties = schema.get("properties", {})
    wanted = schema.get("required") or list(properties)
    body = {}
    for name in wanted:
        prop = properties.get(name, {})
        if "enum" in prop:
            body[name] = next(value for value in prop["enum"] if value is not None)
        elif "$ref" in prop or prop.get("type") == "object":
            body[name] = {}
        else:
            body[name] = EXAMPLES.get(prop.get("type"), "text")
    return body


# Where examples send requests when PUBLIC_URL is not configured: a shell variable the page
# explains. Never the request's Host header, which whoever sends the request chooses.
URL_VARIABLE = "$SRCFLASK_URL"


def curl_example(spec: dict, method: str, path: str, operation: dict) -> str:
    base = (current_app.config.get("PUBLIC_URL") or URL_VARIABLE).rstrip("/")
    url = base + re.sub(r"\{[^}]+\}", "1", path)
    lines = [f'curl -X {method} "{url}"', '  -H "Authorization: Bearer $SRCFLASK_TOKEN"']
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    body = example_body(spec, schema.get("schema"))
    if body is not None:
        lines.append('  -H "Content-Type: application/json"')
        lines.append(f"  -d '{json.dumps(body)}'")
    return " \\\n".join(lines)


def response_schema(response: dict) -> str | None:
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return schema_name(schema) if schema else None


def schema_name(ref: dict | None) -> str | None:
    if not ref:
        return None
    if "$ref" in ref:
        return ref["$ref"].rsplit("/", 1)[-1]
    if ref.get("type") == "array" and "items" in ref:
        return f"list of {schema_name(ref['items'])}"
    return ref.get("type")


def describe_property(prop: dict) -> str:
    if "$ref" in prop:
        return schema_name(prop)
    if "allOf" in prop:
        return " / ".join(schema_name(p) or "" for p in prop["allOf"])
    kind = prop.get("type", "any")
    if kind == "array":
        kind = f"list of {describe_property(prop.get('items', {}))}"
    if prop.get("format"):
        kind += f" ({prop['format']})"
    if "enum" in prop:
        kind += ": " + ", ".join(str(v) for v in prop["enum"] if v is not None)
    limits = [
        f"{word} {prop[key]}"
        for key, word in (
            ("minimum", "min"),
            ("maximum", "max"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
        )
        if key in prop
    ]
    if limits:
        kind += f" [{', '.join(limits)}]"
    if prop.get("nullable"):
        kind += ", or null"
    return kind


def operations(spec: dict) -> list[dict]:
    rows = []
    for path, methods in spec.get("paths", {}).items():
        for method in sorted(
            methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else 99
        ):
            if method not in METHOD_ORDER:
                continue
            operation = methods[method]
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            rows.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "tag": (operation.get("tags") or ["other"])[0],
                    "parameters": [
                        {
                            "name": p["name"],
                            "in": p["in"],
                            "required": p.get("required", False),
                            "type": describe_property(p.get("schema", {})),
                            "description": p.get("description", ""),
                        }
                        for p in [*methods.get("parameters", []), *operation.get("parameters", [])]
                    ],
                    "body": schema_name(body["schema"]) if body else None,
                    "responses": [
                        {
                            "code": code,
                            "description": response.get("description", ""),
                            "schema": response_schema(response),
                        }
                        for code, response in sorted(operation.get("responses", {}).items())
                    ],
                    "curl": curl_example(spec, method.upper(), path, operation),
                }
            )
    return rows


def schemas(spec: dict) -> list[dict]:
    found = []
    for name, schema in sorted(spec.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        found.append(
            {
                "name": name,
                "fields": [
                    {
                        "name": field,
                        "type": describe_property(prop),
                        "required": field in required,
                        "description": prop.get("description", ""),
                    }
                    for field, prop in schema.get("properties", {}).items()
                ],
            }
        )
    return found


@bp.get("/docs")
@public
def docs():
    spec = current_app.extensions["srcflask.api"].spec.to_dict()
    found = operations(spec)
    tags = list(dict.fromkeys(op["tag"] for op in found))
    return render_template(
        "api/docs.html",
        spec=spec,
        operations=found,
        tags=tags,
        schemas=schemas(spec),
        markdown=markdown,
        public_url=current_app.config.get("PUBLIC_URL"),
    )
