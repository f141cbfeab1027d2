"""Who may reach what, and the headers every response carries.

Access is denied by default: a view is open only to approved users unless it
is marked `@public` (anyone) or `@any_status` (any logged-in user, whatever
the state of their account). Blueprints narrow access further by role with
`require_role`. All of it is checked on the server, before the view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, flash, g, jsonify, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from .extensions import csrf, db, login_manager
from .models import ApiToken, LoginSession, Role, User, UserStatus
from .models.api import hash_token
from .models.types import utcnow
from .models.users import hash_session_key

View = TypeVar("View", bound=Callable)

PUBLIC = "public"
ANY_STATUS = "any_status"
APPROVED = "approved"

# Endpoints owned by Flask or extensions that need no login.
PUBLIC_ENDPOINTS = {"static", "api-docs.openapi_json"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
TOKEN_USE_RESOLUTION = timedelta(minutes=1)

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


def public(view: View) -> View:
    """Open a view to everyone, logged in or not."""
    view.access = PUBLIC  # type: ignore[attr-defined]
    return view


def any_status(view: View) -> View:
    """Open a view to every logged-in user, approved or not (status page, logout)."""
    view.access = ANY_STATUS  # type: ignore[attr-defined]
    return view


def access_level(endpoint: str | None) -> str:
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS:
        return PUBLIC
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access", APPROVED)


def wants_json() -> bool:
    """True for API calls and clients that ask for JSON rather than a page."""
    if request.path.startswith("/api/"):
        return True
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == (
        "application/json"
    )


def enforce_access():
    """Stop requests that the current user may not make (runs before every view)."""
    level = access_level(request.endpoint)
    if level == PUBLIC:
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if level == ANY_STATUS or current_user.is_approved:
        return None
    if wants_json():
        abort(403, description=f"Your account is {current_user.status.value}.")
    return redirect(url_for("auth.status"), 303 if request.method != "GET" else 302)


HOME_ENDPOINTS = {
    Role.SPONSOR: "sponsor.home",
    Role.EDITOR: "editor.home",
    Role.ADMIN: "admin.home",
}


def home_endpoint(user: User) -> str:
    """Return the endpoint of the page a user lands on: their role's home, or their status."""
    return HOME_ENDPOINTS[user.role] if user.is_approved else "auth.status"


def check_csrf() -> None:
    """CSRF on every state change, except requests made with an API token.

    A token is never sent by a browser on its own, so a forged cross-site
    request cannot carry one; a cookie session always needs the CSRF token.
    """
    if request.method in SAFE_METHODS or g.get("api_token") is not None:
        return
    if current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()


def load_user_from_token(req) -> User | None:
    """Authenticate an API request by its `Authorization: Bearer` token."""
    header = req.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if not req.path.startswith("/api/") or scheme.lower() != "bearer" or not secret.strip():
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hash_token(secret.strip()))
    )
    if token is None or not token.usable:
        g.api_auth_problem = "The API token is invalid, expired or revoked."
        return None
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > TOKEN_USE_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    g.api_token = token
    return token.user


def require_role(*roles: Role) -> Callable[[], None]:
    """Return a before-request hook that refuses users outside `roles` with 403."""

    def check_role() -> None:
        if access_level(request.endpoint) != APPROVED:
            return
        if current_user.role not in roles:
            abort(403)

    return check_role


def set_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if current_app.config.get("HSTS"):
        headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
    if request.endpoint != "static":
        # Pages show private data: keep them out of shared caches and the back-forward cache.
        headers.setdefault("Cache-Control", "no-store")
    return response


def has_bearer_token() -> bool:
    return request.path.startswith("/api/") and request.headers.get(
        "Authorization", ""
    ).lower().startswith("bearer ")


def load_user(session_id: str) -> User | None:
    """Find the user of a login cookie, if its login session is still open on the server.

    The cookie names the user, their session version and the key of one login
    session (srcflask.models.LoginSession). Logging out deletes that session's
    row, so a copy of the cookie stops working too; a session unused for longer
    than PERMANENT_SESSION_LIFETIME has expired. An API request that carries a
    token is the token's: the cookie is ignored.
    """
    if has_bearer_token():
        return None
    user_id, version, key = [*session_id.split(":"), "", ""][:3]
    if not (user_id.isdigit() and version.isdigit() and key) or len(user_id) > 18:
        return None
    row = db.session.scalar(
        select(LoginSession)
        .options(joinedload(LoginSession.user))
        .where(LoginSession.key_hash == hash_session_key(key))
    )
    if row is None or row.user_id != int(user_id) or row.user.session_version != int(version):
        note_why_the_session_ended(int(user_id))
        return None
    now = utcnow()
    if now - row.last_seen_at > current_app.config["PERMANENT_SESSION_LIFETIME"]:
        db.session.delete(row)
        db.session.commit()
        return None
    if now - row.last_seen_at > TOKEN_USE_RESOLUTION:
        row.last_seen_at = now
        db.session.commit()
    row.user.session_key = key
    return row.user


# What a person whose login session an admin ended is told at their next request.
ENDED_BY_ADMIN = {
    UserStatus.SUSPENDED: (
        "An admin has suspended your account, so you were logged out. Contact the people "
        "who run srcflask in your organization to have it reinstated."
    ),
    UserStatus.REJECTED: (
        "An admin has turned down your account, so you were logged out. Contact the people "
        "who run srcflask in your organization if you think this is a mistake."
    ),
}


def note_why_the_session_ended(user_id: int) -> None:
    """Remember, for this request, that an admin's decision ended this login session."""
    user = db.session.get(User, user_id)
    if user is not None and user.status in ENDED_BY_ADMIN:
        g.session_ended_by = user.status


def unauthorized():
    if wants_json():
        message = g.get("api_auth_problem") or (
            "Send a personal API token: Authorization: Bearer <token>."
        )
        response = jsonify(error={"code": "unauthorized", "message": message})
        return response, 401, {"WWW-Authenticate": 'Bearer realm="srcflask"'}
    ended_by = g.pop("session_ended_by", None)
    if ended_by is not None:
        flash(ENDED_BY_ADMIN[ended_by], "error")
        return redirect(url_for("auth.login"), 303)
    if request.method != "GET":
        # A form post cannot be replayed after login: just ask to log in.
        return redirect(url_for("auth.login"), 303)
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def safe_next_url(target: str | None) -> str | None:
    """Return `target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(character) < 32 or ord(character) == 127 for character in target):
        return None  # CR/LF would split the Location header
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def init_app(app: Flask) -> None:
    login_manager.user_loader(load_user)
    login_manager.request_loader(load_user_from_token)
    login_manager.unauthorized_handler(unauthorized)
    app.before_request(enforce_access)
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
