"""Helpers shared by the API views: refusals in the API's words, and small conversions."""

from __future__ import annotations

from http import HTTPStatus
from typing import NoReturn

from flask import abort, g, request
from flask_login import current_user

from ..models import Role

# Documented on every operation that can give them.
COMMON_ERRORS = (400, 401, 403)


def refuse(status: int, message: str) -> NoReturn:
    abort(status, description=message)


def require_role(*roles: Role) -> None:
    """Refuse with 403 unless the caller has one of `roles`."""
    if current_user.role not in roles:
        names = " or ".join(f"{role.value}s" for role in roles)
        refuse(403, f"Only {names} can do this.")


def client_ip() -> str | None:
    return request.remote_addr


def api_token():
    """The token this request was authenticated with (None for a browser session)."""
    return g.get("api_token")


def errors(blp, *codes: int):
    """Document the error answers an operation can give (each with the error envelope)."""

    def decorator(view):
        for code in sorted(set((*COMMON_ERRORS, *codes)), reverse=True):
            view = blp.alt_response(code, response=HTTPStatus(code).name)(view)
        return view

    return decorator
