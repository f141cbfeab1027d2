"""Sign-up, login, logout, the status page and rate limits."""

from __future__ import annotations

import html
import os
import re
from unittest import mock

import pytest
from sqlalchemy import select
from werkzeug.security import check_password_hash

from srcflask.accounts import service as accounts
from srcflask.accounts.pages import LOGIN_FAILED
from srcflask.accounts.passwords import common_passwords
from srcflask.extensions import db, limiter
from srcflask.models import AuditEvent, Role, User, UserStatus
from srcflask.models import users as users_module

from .conftest import login_as

GOOD_PASSWORD = "a quiet lighthouse at dusk"


def signup_form(**overrides) -> dict:
    form = {
        "name": "Nora Newcomer",
        "email": "nora@example.org",
        "organization": "Acme",
        "password": GOOD_PASSWORD,
        "confirm_password": GOOD_PASSWORD,
        "role": "sponsor",
    }
    return form | overrides


def new_user_id(app, email: str) -> int:
    [user] = users_with_email(app, email)
    return user.id


def users_with_email(app, email: str) -> list[User]:
    with app.app_context():
        return db.session.scalars(select(User).where(User.email == email)).all()


def test_signup_creates_a_pending_account_and_signs_it_in(app, client):
    response = client.post("/auth/signup", data=signup_form(email="Nora@Example.ORG"))

    assert response.status_code == 303
    assert response.location == "/auth/status"
    [user] = users_with_email(app, "nora@example.org")
    assert user.status is UserStatus.PENDING
    assert user.role is Role.SPONSOR
    assert user.organization == "Acme"
    assert user.duplicate_of_id is None
    assert user.password_hash.startswith(("scrypt:", "argon2"))
    assert GOOD_PASSWORD not in user.password_hash
    page = html.unescape(client.get("/auth/status").get_data(as_text=True))
    assert "Your account is pending" in page
    assert "Thanks for signing up, Nora Newcomer" in page
    # Signed in, and still reaching nothing but the status page and logout.
    assert client.get("/sponsor/documents").location == "/auth/status"
    assert client.get("/api/v1/me").status_code == 403
    assert client.post("/auth/logout").location == "/auth/login"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"email": "not-an-email"}, "email", "Invalid email address."),
        ({"password": "short1", "confirm_password": "short1"}, "password", "at least 8"),
        ({"password": "x" * 129, "confirm_password": "x" * 129}, "password", "at most 128"),
        ({"password": "password123", "confirm_password": "password123"}, "password", "too common"),
        (
            {"password": "Sunshine2024", "confirm_password": "Sunshine2024"},
            "password",
            "too common",
        ),
        ({"confirm_password": "something else entirely"}, "confirm_password", "do not match"),
        ({"role": "admin"}, "role", "Not a valid choice"),
        ({"name": "n" * 101}, "name", "longer than 100 characters"),
    ],
)
def test_signup_refuses_bad_input_next_to_the_field(app, client, overrides, field, message):
    response = client.post("/auth/signup", data=signup_form(**overrides))

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert f'id="{field}-errors"' in page
    errors_block = page.split(f'id="{field}-errors"', 1)[1].split("</ul>", 1)[0]
    assert message in errors_block
    assert users_with_email(app, signup_form(**overrides)["email"].lower()) == []


def test_common_password_list_is_large_enough():
    assert len(common_passwords()) >= 1000
    assert len([p for p in common_passwords() if len(p) >= 8]) >= 1000


def visit_as_newcomer(app, email: str) -> list[tuple[int, str | None, str]]:
    """What a visitor who signs up with `email` meets: sign-up, status, a page, logout, login."""
    client = app.test_client()
    form = signup_form(email=email)
    seen = []
    for method, path, data in [
        ("post", "/auth/signup", form),
        ("get", "/auth/status", None),
        ("get", "/sponsor/documents", None),
        ("get", "/api/v1/documents", None),
        ("post", "/auth/logout", None),
        ("post", "/auth/login", {"email": email, "password": form["password"]}),
        ("get", "/auth/status", None),
    ]:
        response = getattr(client, method)(path, data=data)
        body = response.get_data(as_text=True).replace(email.lower(), "EMAIL")
        body = re.sub(r'name="csrf_token" value="[^"]+"', "CSRF", body)  # random per session
        seen.append((response.status_code, response.location, body))
    return seen


def test_signup_with_a_taken_email_is_answered_exactly_like_a_new_one(app, make_user):
    owner = make_user(name="Olga Owner", email="taken@example.org")
    with mock.patch.object(
        accounts, "generate_password_hash", wraps=accounts.generate_password_hash
    ) as hasher:
        new = visit_as_newcomer(app, "fresh@example.org")
        taken = visit_as_newcomer(app, "TAKEN@example.org")

    # Every answer, every redirect and every page is the same, but for the email shown.
    assert new == taken
    assert [status for status, _, _ in new] == [303, 200, 302, 403, 303, 303, 200]
    assert new[1][0:2] == (200, None) and "Your account is pending" in new[1][2]
    # Both paths pay for one password hash, so timing does not tell them apart either.
    assert hasher.call_count == 2
    owner_row, repeat = sorted(users_with_email(app, "taken@example.org"), key=lambda u: u.id)
    assert (owner_row.id, owner_row.duplicate_of_id) == (owner.id, None)
    assert repeat.duplicate_of_id == owner.id and repeat.status is UserStatus.PENDING
    with app.app_context():
        signups = db.session.execute(
            select(AuditEvent.action, AuditEvent.target_user_id)
            .where(AuditEvent.action.like("account.signup%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [tuple(row) for row in signups] == [
        ("account.signup", new_user_id(app, "fresh@example.org")),
        ("account.signup_repeated", owner.id),
    ]


def test_a_repeated_signup_never_reaches_the_owners_account(app, client, make_user, admin_client):
    owner = make_user(name="Olga Owner", email="taken@example.org")
    client.post("/auth/signup", data=signup_form(email="taken@example.org"))
    client.post("/auth/logout")

    # The owner still logs in to their own account with their own password...
    owners = app.test_client()
    logged_in = owners.post("/auth/login", data={"email": owner.email, "password": owner.password})
    assert logged_in.location == "/sponsor/"
    # ...and the repeat's password opens only the repeat, which stays pending.
    landed = client.post(
        "/auth/login", data={"email": "taken@example.org", "password": GOOD_PASSWORD}
    )
    assert landed.location == "/auth/status"
    assert client.get("/sponsor/documents").location == "/auth/status"

    [repeat] = [u for u in users_with_email(app, owner.email) if u.duplicate_of_id]
    refused = admin_client.post(f"/admin/users/{repeat.id}/approve", follow_redirects=True)
    assert "already belongs to another account" in html.unescape(refused.get_data(as_text=True))
    refused = admin_client.post(
        f"/admin/users/{repeat.id}/role", data={"role": "editor"}, follow_redirects=True
    )
    assert "can only be rejected" in html.unescape(refused.get_data(as_text=True))
    [repeat] = [u for u in users_with_email(app, owner.email) if u.duplicate_of_id]
    assert (repeat.status, repeat.role) == (UserStatus.PENDING, Role.SPONSOR)

    users_page = html.unescape(admin_client.get("/admin/users").get_data(as_text=True))
    assert "Already the email of Olga Owner's account" in users_page
    assert f"/admin/users/{repeat.id}/approve" not in users_page
    assert admin_client.post(f"/admin/users/{repeat.id}/reject").status_code == 303
    assert client.get("/auth/status").location == "/auth/login"  # rejection ends its sessions


def test_every_failed_login_hashes_the_same(app, monkeypatch):
    # Timing is never asserted; what it is made of is: how many password hashes a
    # failed login checks, and by which method, for known and unknown emails alike.
    for email, signups in (("owner@example.org", 1), ("repeated@example.org", 4)):
        for _ in range(signups):
            app.test_client().post("/auth/signup", data=signup_form(email=email))
    checked: list[str] = []

    def counting_check(password_hash: str, password: str) -> bool:
        checked.append(password_hash.split("$", 1)[0])  # method and its parameters
        return check_password_hash(password_hash, password)

    monkeypatch.setattr(users_module, "check_password_hash", counting_check)

    def failed_login(email: str) -> list[str]:
        checked.clear()
        answer = app.test_client().post(
            "/auth/login", data={"email": email, "password": "not the password at all"}
        )
        assert answer.status_code == 401
        return list(checked)

    unknown = failed_login("nobody@example.org")
    assert len(unknown) == 1 + users_module.REPEATED_SIGNUPS_TRIED
    assert unknown[0].startswith("scrypt:")
    for known in ("owner@example.org", "repeated@example.org", "REPEATED@example.org "):
        assert failed_login(known) == unknown, known

    # The newest repeated sign-up still logs in with its own password.
    checked.clear()
    answer = app.test_client().post(
        "/auth/login", data={"email": "repeated@example.org", "password": GOOD_PASSWORD}
    )
    assert answer.status_code == 303 and answer.location == "/auth/status"


def test_two_signups_with_one_new_email_at_once_make_an_account_and_a_repeat(app, client):
    client.post("/auth/signup", data=signup_form())
    # A second sign-up that read "no account" just before the first one committed: the
    # unique index refuses its insert, and it becomes a repeat of the account that won.
    real_find = accounts.find_user_by_email
    calls = []

    def stale_then_real(email):
        calls.append(email)
        return None if len(calls) == 1 else real_find(email)

    with mock.patch.object(accounts, "find_user_by_email", side_effect=stale_then_real):
        response = app.test_client().post("/auth/signup", data=signup_form())

    assert response.location == "/auth/status"
    assert len(calls) == 2
    first, repeat = sorted(users_with_email(app, "nora@example.org"), key=lambda u: u.id)
    assert (first.duplicate_of_id, repeat.duplicate_of_id) == (None, first.id)


def test_login_starts_a_fresh_session_and_lands_on_the_role_home(app, client, sponsor):
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"

    response = client.post(
        "/auth/login", data={"email": sponsor.email.upper(), "password": sponsor.password}
    )

    assert response.status_code == 303
    assert response.location == "/sponsor/"
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"].startswith(f"{sponsor.id}:1:")
    with app.app_context():
        assert db.session.get(User, sponsor.id).last_login_at is not None


@pytest.mark.parametrize("email_kind", ["unknown", "known"])
def test_wrong_email_or_password_gives_one_generic_message(client, sponsor, email_kind):
    email = sponsor.email if email_kind == "known" else "nobody@example.org"

    response = client.post("/auth/login", data={"email": email, "password": "wrong password!"})

    assert response.status_code == 401
    assert LOGIN_FAILED in response.get_data(as_text=True)


def test_login_honours_only_local_next_urls(client, sponsor):
    ok = client.post(
        "/auth/login?next=/sponsor/", data={"email": sponsor.email, "password": sponsor.password}
    )
    assert ok.location == "/sponsor/"
    client.post("/auth/logout")
    for evil in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        response = client.post(
            f"/auth/login?next={evil}", data={"email": sponsor.email, "password": sponsor.password}
        )
        assert response.location == "/sponsor/", evil
        client.post("/auth/logout")


def test_logout_is_a_post_and_ends_the_session(client, sponsor, auth):
    auth.login(sponsor)
    assert client.get("/auth/logout").status_code == 405

    response = client.post("/auth/logout")

    assert response.status_code == 303
    assert client.get("/sponsor/").location.startswith("/auth/login")


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (UserStatus.PENDING, "waiting"),
        (UserStatus.REJECTED, "turned down"),
        (UserStatus.SUSPENDED, "suspended"),
    ],
)
def test_inactive_accounts_see_only_their_status_page(client, make_user, auth, status, words):
    account = make_user(status=status, role=Role.EDITOR)

    response = auth.login(account)

    assert response.location == "/auth/status"
    page = client.get("/auth/status").get_data(as_text=True)
    assert f"Your account is {status.value}" in page
    assert words in page if words != "waiting" else "approve your account" in page
    for url in ("/editor/", "/sponsor/", "/admin/", "/admin/users"):
        assert client.get(url).location == "/auth/status"
    assert client.post("/admin/users/1/approve").location == "/auth/status"


def test_approved_users_are_sent_home_from_the_status_page(client, editor, auth):
    auth.login(editor)
    assert client.get("/auth/status").location == "/editor/"


def test_index_sends_each_role_home(app, make_user):
    for role, home in [
        (Role.SPONSOR, "/sponsor/"),
        (Role.EDITOR, "/editor/"),
        (Role.ADMIN, "/admin/"),
    ]:
        client = app.test_client()
        client.post(
            "/auth/login",
            data={"email": make_user(role=role).email, "password": "correct horse battery staple"},
        )
        assert client.get("/").location == home
    assert app.test_client().get("/").location == "/auth/login"


# -- rate limits --------------------------------------------------------------


def storages():
    yield pytest.param("memory://", id="memory")
    url = os.environ.get("TEST_REDIS_URL")
    yield pytest.param(
        url or "redis://unset",
        id="redis",
        marks=pytest.mark.skipif(not url, reason="TEST_REDIS_URL is not set"),
    )


@pytest.fixture(params=list(storages()))
def limited_app(request, app_factory):
    """Build an app with rate limits on, in memory or in Redis, starting from zero."""
    built = []

    def build(**limits):
        app = app_factory(
            RATELIMIT_ENABLED=True,
            RATELIMIT_STORAGE_URI=request.param,
            **{"RATELIMIT_" + key.upper(): value for key, value in limits.items()},
        )
        with app.app_context():
            limiter.reset()
        built.append(app)
        return app

    yield build
    for app in built:
        with app.app_context():
            limiter.reset()


def test_failed_logins_per_account_reach_429_with_a_retry_time(limited_app, make_user):
    app = limited_app(login_per_ip="100 per minute", login_per_account="3 per minute")
    account = make_user()
    client = app.test_client()
    bad = {"email": account.email, "password": "wrong password!"}

    codes = [client.post("/auth/login", data=bad).status_code for _ in range(4)]

    assert codes == [401, 401, 401, 429]
    blocked = client.post(
        "/auth/login", data={"email": account.email.upper(), "password": account.password}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["Retry-After"]) > 0
    # Said once, with the wait in seconds.
    assert blocked.get_data(as_text=True).lower().count("try again in") == 1
    # Another account from the same address is still let in.
    other = make_user()
    ok = client.post("/auth/login", data={"email": other.email, "password": other.password})
    assert ok.status_code == 303


def test_successful_logins_do_not_use_up_the_account_limit(limited_app, make_user):
    app = limited_app(login_per_ip="100 per minute", login_per_account="2 per minute")
    account = make_user()
    for _ in range(4):
        client = app.test_client()
        assert login_as(client, account).post("/auth/logout").status_code == 303


def test_logins_per_ip_reach_429(limited_app):
    app = limited_app(login_per_ip="6 per minute", login_per_account="100 per minute")
    client = app.test_client()
    codes = [
        client.post(
            "/auth/login", data={"email": f"n{i}@example.org", "password": "nope nope"}
        ).status_code
        for i in range(7)
    ]
    assert codes == [401] * 6 + [429]


def test_signups_per_account_reach_429(limited_app):
    app = limited_app(signup_per_ip="100 per hour", signup_per_account="2 per hour")
    # A new visitor each time: a sign-up signs its visitor in.
    codes = [
        app.test_client().post("/auth/signup", data=signup_form()).status_code for _ in range(3)
    ]
    assert codes == [303, 303, 429]
    other = app.test_client().post("/auth/signup", data=signup_form(email="b@example.org"))
    assert other.status_code == 303


def test_signups_per_ip_reach_429(limited_app):
    app = limited_app(signup_per_ip="3 per hour", signup_per_account="100 per hour")
    codes = [
        app.test_client()
        .post("/auth/signup", data=signup_form(email=f"u{i}@example.org"))
        .status_code
        for i in range(4)
    ]
    assert codes == [303, 303, 303, 429]
    assert "Too many attempts" in app.test_client().post(
        "/auth/signup", data=signup_form(email="late@example.org")
    ).get_data(as_text=True)


def from_address(app, address: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_login_attempts_sent_as_json_count_per_account(limited_app, make_user):
    app = limited_app(login_per_ip="100 per minute")
    first, second = make_user(), make_user()
    client = app.test_client()
    wrong = "wrong password!"

    codes = [
        client.post("/auth/login", json={"email": first.email, "password": wrong}).status_code
        for _ in range(6)
    ]

    assert codes == [401] * 5 + [429]
    other = client.post("/auth/login", json={"email": second.email, "password": wrong})
    assert other.status_code == 401  # another account's bucket is its own


def test_a_strangers_failures_do_not_lock_the_owner_out(limited_app, make_user):
    app = limited_app()  # the shipped limits
    owner = make_user(role=Role.ADMIN)
    stranger = from_address(app, "203.0.113.66")
    wrong = {"email": owner.email, "password": "wrong password!"}

    codes = [stranger.post("/auth/login", data=wrong).status_code for _ in range(7)]

    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    owner_browser = from_address(app, "198.51.100.7")
    signed_in = owner_browser.post(
        "/auth/login", data={"email": owner.email, "password": owner.password}
    )
    assert signed_in.status_code == 303
    with app.app_context():
        locked = db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == "auth.login_locked")
        ).all()
    # One row for the lockout, however many attempts it turned away.
    assert len(locked) == 1
    assert (locked[0].target_user_id, locked[0].ip_address) == (owner.id, "203.0.113.66")


def test_failures_from_many_addresses_reach_the_ceiling_per_account(limited_app, make_user):
    app = limited_app(login_per_account="8 per hour")
    owner = make_user()
    wrong = {"email": owner.email, "password": "wrong password!"}

    codes = [
        from_address(app, f"203.0.113.{n}").post("/auth/login", data=wrong).status_code
        for n in range(9)
    ]

    assert codes == [401] * 8 + [429]
    with app.app_context():
        locked = db.session.scalar(
            select(AuditEvent).where(AuditEvent.action == "auth.login_locked")
        )
    assert locked.details["scope"] == "account"
