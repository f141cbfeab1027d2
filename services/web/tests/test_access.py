"""The access matrix: every route x every kind of visitor, with the answer each gets.

Adding a route without a row here fails `test_every_route_has_a_row`, so no
page can ship without deciding who may reach it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from srcflask.models import Role, UserStatus

from .factories import ModelVersionFactory

VISITORS = ["anonymous", "pending", "rejected", "suspended", "sponsor", "editor", "admin"]
INACTIVE = ["pending", "rejected", "suspended"]
APPROVED = ["sponsor", "editor", "admin"]

# Expected answers: a status code, or (status code, where it redirects to).
TO_LOGIN = (302, "/auth/login")
TO_LOGIN_AFTER_POST = (303, "/auth/login")
TO_STATUS = (302, "/auth/status")
TO_STATUS_AFTER_POST = (303, "/auth/status")
TO_INDEX = (302, "/")


def everyone(answer) -> dict:
    return {visitor: answer for visitor in VISITORS}


def only(roles: list[str], allowed, *, post: bool = False) -> dict:
    """Anonymous to login, inactive to their status page, other roles 403."""
    answers = {"anonymous": TO_LOGIN_AFTER_POST if post else TO_LOGIN}
    answers |= {v: TO_STATUS_AFTER_POST if post else TO_STATUS for v in INACTIVE}
    answers |= {v: allowed if v in roles else 403 for v in APPROVED}
    return answers


def logged_out_only(anonymous_answer) -> dict:
    return {"anonymous": anonymous_answer} | {v: TO_INDEX for v in INACTIVE + APPROVED}


@dataclass
class Row:
    url: str
    answers: dict
    data: dict = field(default_factory=dict)


# (method, URL rule) -> the URL to request and what each visitor gets.
# {target} is a pending user the admin actions act on; {version} a model version.
MATRIX: dict[tuple[str, str], Row] = {
    ("GET", "/"): Row("/", {"anonymous": TO_LOGIN} | {v: 302 for v in INACTIVE + APPROVED}),
    ("GET", "/healthz"): Row("/healthz", everyone(200)),
    ("GET", "/static/<path:filename>"): Row("/static/css/app.css", everyone(200)),
    ("GET", "/auth/login"): Row("/auth/login", logged_out_only(200)),
    ("POST", "/auth/login"): Row("/auth/login", logged_out_only(422)),
    ("GET", "/auth/signup"): Row("/auth/signup", logged_out_only(200)),
    ("POST", "/auth/signup"): Row("/auth/signup", logged_out_only(422)),
    ("POST", "/auth/logout"): Row("/auth/logout", everyone((303, "/auth/login"))),
    ("GET", "/auth/status"): Row(
        "/auth/status",
        {"anonymous": TO_LOGIN} | {v: 200 for v in INACTIVE} | {v: 302 for v in APPROVED},
    ),
    ("GET", "/sponsor/"): Row("/sponsor/", only(["sponsor"], 200)),
    ("GET", "/editor/"): Row("/editor/", only(["editor"], 200)),
    ("GET", "/admin/"): Row("/admin/", only(["admin"], 200)),
    ("GET", "/admin/users"): Row("/admin/users", only(["admin"], 200)),
    ("GET", "/admin/audit"): Row("/admin/audit", only(["admin"], 200)),
    ("POST", "/admin/users/<int:user_id>/<any(approve, reject, suspend, reinstate):action>"): Row(
        "/admin/users/{target}/approve", only(["admin"], (303, "/admin/users"), post=True)
    ),
    ("GET", "/admin/models"): Row("/admin/models", only(["admin"], 200)),
    ("POST", "/admin/models/<int:version_id>/alias"): Row(
        "/admin/models/{version}/alias",
        only(["admin"], (303, "/admin/models"), post=True),
        data={"alias": "candidate"},
    ),
    ("POST", "/admin/models/<int:version_id>/prompt-format"): Row(
        "/admin/models/{version}/prompt-format",
        only(["admin"], (303, "/admin/models"), post=True),
        data={"prompt_format": "raw"},
    ),
    ("POST", "/admin/models/<int:version_id>/try"): Row(
        "/admin/models/{version}/try",
        only(["admin"], 422, post=True),
        data={"prompt": ""},
    ),
    ("POST", "/admin/users/<int:user_id>/role"): Row(
        "/admin/users/{target}/role",
        only(["admin"], (303, "/admin/users"), post=True),
        data={"role": "editor"},
    ),
}


def app_routes(app) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def test_every_route_has_a_row(app):
    routes = app_routes(app)
    missing = routes - MATRIX.keys()
    stale = MATRIX.keys() - routes
    assert not missing, f"routes without a row in the access matrix: {sorted(missing)}"
    assert not stale, f"rows for routes that no longer exist: {sorted(stale)}"


VISITOR_USERS = {
    "pending": (Role.SPONSOR, UserStatus.PENDING),
    "rejected": (Role.EDITOR, UserStatus.REJECTED),
    "suspended": (Role.SPONSOR, UserStatus.SUSPENDED),
    "sponsor": (Role.SPONSOR, UserStatus.APPROVED),
    "editor": (Role.EDITOR, UserStatus.APPROVED),
    "admin": (Role.ADMIN, UserStatus.APPROVED),
}


def client_for(app, make_user, visitor: str):
    client = app.test_client()
    if visitor != "anonymous":
        role, status = VISITOR_USERS[visitor]
        account = make_user(role=role, status=status)
        with client.session_transaction() as session:
            session["_user_id"] = f"{account.id}:1"
            session["_fresh"] = True
    return client


@pytest.mark.parametrize("visitor", VISITORS)
@pytest.mark.parametrize("route", sorted(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_access(app, make_user, route, visitor):
    row = MATRIX[route]
    method, _ = route
    # Admins keep a second admin around so no action trips the last-admin guard.
    make_user(role=Role.ADMIN)
    target = make_user(role=Role.SPONSOR, status=UserStatus.PENDING)
    with app.app_context():
        version = ModelVersionFactory().id
    client = client_for(app, make_user, visitor)

    url = row.url.format(target=target.id, version=version)
    response = client.open(url, method=method, data=row.data)

    expected = row.answers[visitor]
    code, location = expected if isinstance(expected, tuple) else (expected, None)
    assert response.status_code == code, response.get_data(as_text=True)[:500]
    if location is not None:
        assert response.location.split("?")[0] == location
