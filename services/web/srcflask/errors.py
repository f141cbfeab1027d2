"""Error pages in the site's layout, and JSON errors for API clients."""

from __future__ import annotations

import logging
import math
import time

from flask import Flask, current_app, g, jsonify, render_template
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import DisconnectionError, OperationalError
from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable

from .extensions import db, limiter, login_manager
from .security import wants_json

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Log in first",
    403: "Not allowed",
    404: "Page not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Check your input",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Try again in a moment",
}

EXPLANATIONS = {
    400: "The request could not be understood.",
    403: "Your account does not have access to this page.",
    404: "There is nothing here. Check the address, or go back to your home page.",
    405: "This address does not accept that kind of request.",
    413: "What you sent is larger than this site accepts.",
    500: "The error has been logged. Please try again in a moment.",
    503: "The site cannot reach its database right now. Please try again in a few seconds.",
}

# How long a client should wait before trying again when the database does not answer.
DATABASE_RETRY_AFTER = 5


def retry_after_seconds() -> int | None:
    """Seconds until the rate limit that was just hit lets the next attempt in."""
    current = limiter.current_limit
    if current is None:
        return None
    return max(1, math.ceil(current.reset_at - time.time()))


def error_response(
    error: HTTPException,
    *,
    message: str | None = None,
    code: str | None = None,
    retry_after: int | None = None,
):
    status = error.code or 500
    title = TITLES.get(status, error.name)
    if message is None:
        message = EXPLANATIONS.get(status) or error.description or title
    if status == 429:
        retry_after = retry_after_seconds()
    if wants_json():
        body = {"code": code or error.name.lower().replace(" ", "_"), "message": message}
        field_errors = invalid_fields(error)
        if field_errors:
            body["fields"] = field_errors
            body["message"] = "Some fields are invalid; `fields` says which and why."
        if retry_after is not None:
            body["retry_after"] = retry_after
        response = jsonify(error=body)
    else:
        response = render_template(
            "errors/error.html",
            status=status,
            title=title,
            message=message,
            retry_after=retry_after,
        )
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return response, status, headers


def invalid_fields(error: HTTPException) -> dict | None:
    """Per-field messages of a validation error (webargs puts them in `error.data`)."""
    data = getattr(error, "data", None) or {}
    messages = data.get("errors") or data.get("messages")
    if not isinstance(messages, dict):
        return None
    merged: dict = {}
    for location, problems in messages.items():  # json, query, ...
        if isinstance(problems, dict):
            merged.update(problems)
        else:
            merged[location] = problems
    return merged or None


def handle_http_error(error: HTTPException):
    # A description given with abort() is meant for the user; werkzeug's defaults are not.
    custom = error.description if error.description != type(error).description else None
    if error.code == 413:
        limit_kib = current_app.config["MAX_CONTENT_LENGTH"] // 1024
        custom = f"What you sent is larger than this site accepts ({limit_kib} KiB at most)."
    return error_response(error, message=custom)


def handle_rate_limit(error: RateLimitExceeded):
    message = "Too many attempts from you."
    if wants_json():
        # Pages say when to try again below the message; JSON says it here (and in retry_after).
        seconds = retry_after_seconds()
        message += f" Try again in {seconds} seconds." if seconds else " Try again later."
    return error_response(error, message=message, code="rate_limited")


def handle_csrf_error(error: CSRFError):
    return error_response(
        error,
        message="This form has expired or did not come from this site. "
        "Go back, reload the page and try again.",
        code="csrf_failed",
    )


def handle_database_unavailable(error: Exception):
    """Answer 503 with Retry-After when the database does not answer (restart, network).

    Not a bug, so not a 500: the request's transaction is rolled back, and the
    same request works once the database is back (the pool pings connections
    before use). The page is drawn as for a visitor: showing the user would
    need the database again.
    """
    log.warning("database unavailable: %s", error)
    db.session.rollback()
    g._login_user = login_manager.anonymous_user()  # what Flask-Login's current_user reads
    return error_response(
        ServiceUnavailable(), code="database_unavailable", retry_after=DATABASE_RETRY_AFTER
    )


def handle_unexpected_error(error: Exception):
    log.exception("Unhandled error")
    db.session.rollback()
    return error_response(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(RateLimitExceeded, handle_rate_limit)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(DisconnectionError, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected_error)
