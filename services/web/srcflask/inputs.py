"""Checks every request body passes before a view sees it.

Pages take HTML forms; the API under /api/ takes JSON. Whatever a client
sends, a malformed or hostile body gets a clear 400 here rather than an
error deep inside a view:

- JSON is parsed with bounds: nesting at most MAX_JSON_DEPTH levels, integers
  of at most MAX_INTEGER_DIGITS digits (Python would spend seconds on a
  number of a million digits, and no database column holds more);
- a JSON object posted to a page is read as its form, each value as text
  (numbers become their digits; objects and lists are refused), so pages
  answer JSON clients as they answer browsers;
- a file where a page expects text is refused, unless the view is marked
  `@accepts_files`;
- NUL characters, which no page takes and Postgres cannot store, are refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, abort, current_app, g, request
from werkzeug.datastructures import ImmutableMultiDict

MAX_JSON_DEPTH = 32
MAX_INTEGER_DIGITS = 19  # 2**63 has 19 digits
FORM_MIMETYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

View = TypeVar("View", bound=Callable)


class BadJson(ValueError):
    """JSON that is well formed but beyond what srcflask accepts; the message says why."""


def accepts_files(view: View) -> View:
    """Let a page's form carry file uploads."""
    view.accepts_files = True  # type: ignore[attr-defined]
    return view


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INTEGER_DIGITS:
        raise BadJson(
            f"A number in the JSON body is too large (at most {MAX_INTEGER_DIGITS} digits)."
        )
    return int(text)


def _depth(value: Any, limit: int) -> int:
    """The nesting depth of a parsed JSON value, counting no further than `limit` + 1."""
    stack = [(value, 1)]
    deepest = 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def parse_json(data: bytes | str) -> Any:
    """Parse a JSON body within srcflask's bounds; raise BadJson or ValueError if not."""
    try:
        value = json.loads(data, parse_int=_bounded_int)
    except RecursionError:
        raise BadJson(
            f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels)."
        ) from None
    if _depth(value, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadJson(f"The JSON body is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
    return value


def json_body() -> Any:
    """The request's JSON body, parsed once within the bounds; None if there is none.

    Raises BadJson or ValueError for a body that cannot be accepted.
    """
    if request.method not in BODY_METHODS or not request.is_json:
        return None
    if "srcflask_json" not in g:
        raw = request.get_data(cache=True)
        g.srcflask_json = parse_json(raw) if raw.strip() else None
    return g.srcflask_json


def submitted_text(name: str) -> str:
    """A text field of the request, from its form or its JSON object ("" if absent or not text).

    For code that runs before the body checks, such as rate-limit keys.
    """
    value = request.form.get(name) if request.mimetype in FORM_MIMETYPES else None
    if value is None:
        try:
            body = json_body()
        except ValueError:
            return ""
        value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def check_json_body() -> None:
    """Refuse JSON bodies beyond the bounds; give pages a JSON object as their form."""
    try:
        value = json_body()
    except BadJson as error:
        abort(400, description=str(error))
    except ValueError:
        abort(400, description="The body is not valid JSON.")
    if request.is_json and request.method in BODY_METHODS and not request.path.startswith("/api/"):
        # Set both, as werkzeug's own form parsing would: it fills them together.
        request.form = ImmutableMultiDict(form_fields(value if value is not None else {}))
        request.files = ImmutableMultiDict()


def form_fields(value: Any) -> list[tuple[str, str]]:
    """The form a page reads from a JSON body: an object whose values are text or numbers."""
    if not isinstance(value, dict):
        abort(400, description="This page takes a form, or a JSON object of its fields.")
    fields: list[tuple[str, str]] = []
    for name, item in value.items():
        if item is None or item is False:
            continue  # an unset field, as a browser leaves out an unticked box
        if item is True:
            fields.append((name, "y"))
        elif isinstance(item, str | int | float):
            fields.append((name, str(item)))
        else:
            abort(400, description=f"The field “{name[:50]}” must be text, not a list or object.")
    return fields


def reject_unexpected_files() -> None:
    """Refuse file parts sent to a page that takes only text."""
    if request.method not in BODY_METHODS or request.mimetype != "multipart/form-data":
        return
    if not request.files:
        return
    view = current_app.view_functions.get(request.endpoint or "")
    if not getattr(view, "accepts_files", False):
        names = ", ".join(sorted(request.files))[:100]
        abort(400, description=f"This form takes text, not files (sent as a file: {names}).")


def reject_nul_characters() -> None:
    """Refuse text with NUL characters: no page takes them, and Postgres cannot store them."""
    values = [request.path, *request.args.values()]
    if request.mimetype in FORM_MIMETYPES or "form" in request.__dict__:
        values.extend(request.form.values())
    if any("\x00" in value for value in values):
        abort(400, description="Text must not contain NUL characters.")


def init_app(app: Flask) -> None:
    app.before_request(check_json_body)
    app.before_request(reject_unexpected_files)
    app.before_request(reject_nul_characters)
