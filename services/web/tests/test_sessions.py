"""Login sessions live on the server: logout, "log out everywhere" and password changes end them."""

from __future__ import annotations

from sqlalchemy import select

from srcflask.extensions import db
from srcflask.models import AuditEvent, LoginSession, User

from .conftest import login_as

NEW_PASSWORD = "a brand new harbour song"


def session_cookie(client) -> str:
    cookie = client.get_cookie("srcflask_session")
    assert cookie is not None
    return cookie.value


def replay(app, cookie: str):
    """A second browser that carries a copy of someone's session cookie."""
    other = app.test_client()
    other.set_cookie("srcflask_session", cookie)
    return other


def test_a_copied_cookie_stops_working_after_logout(app, client, sponsor):
    login_as(client, sponsor)
    stolen = session_cookie(client)
    assert replay(app, stolen).get("/sponsor/documents").status_code == 200

    client.post("/auth/logout")

    response = replay(app, stolen).get("/sponsor/documents")
    assert response.status_code == 302
    assert response.location.startswith("/auth/login")


def test_logout_ends_only_that_session(app, sponsor):
    laptop = login_as(app.test_client(), sponsor)
    phone = login_as(app.test_client(), sponsor)

    laptop.post("/auth/logout")

    assert phone.get("/sponsor/documents").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(LoginSession)) == 1


def test_the_account_page_lists_sessions_and_logs_out_everywhere(app, sponsor):
    laptop = login_as(app.test_client(), sponsor)
    phone = login_as(app.test_client(), sponsor)
    page = laptop.get("/account/").get_data(as_text=True)
    assert "This session" in page
    assert page.count('class="session-row"') == 2

    response = laptop.post("/account/sessions/end-all")

    assert response.status_code == 303
    assert response.location.startswith("/auth/login")
    for client in (laptop, phone):
        assert client.get("/sponsor/documents").location.startswith("/auth/login")
    with app.app_context():
        assert db.session.scalar(select(db.func.count()).select_from(LoginSession)) == 0
        assert "account.logout_everywhere" in db.session.scalars(select(AuditEvent.action)).all()


def test_changing_the_password_needs_the_current_one_and_ends_other_sessions(app, sponsor):
    laptop = login_as(app.test_client(), sponsor)
    phone = login_as(app.test_client(), sponsor)
    form = {
        "current_password": "not my password",
        "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
    }

    refused = laptop.post("/account/password", data=form)
    assert refused.status_code == 422
    assert "current password is wrong" in refused.get_data(as_text=True)

    changed = laptop.post("/account/password", data=form | {"current_password": sponsor.password})

    assert changed.status_code == 303
    assert laptop.get("/sponsor/documents").status_code == 200  # this session goes on
    assert phone.get("/sponsor/documents").location.startswith("/auth/login")
    with app.app_context():
        user = db.session.get(User, sponsor.id)
        assert user.check_password(NEW_PASSWORD)
        assert "account.password_change" in db.session.scalars(select(AuditEvent.action)).all()
    fresh = app.test_client()
    old = fresh.post("/auth/login", data={"email": sponsor.email, "password": sponsor.password})
    assert old.status_code == 401


def test_a_new_password_must_pass_the_policy(app, sponsor):
    client = login_as(app.test_client(), sponsor)

    response = client.post(
        "/account/password",
        data={
            "current_password": sponsor.password,
            "new_password": "password",
            "confirm_password": "password",
        },
    )

    assert response.status_code == 422
    assert "too common" in response.get_data(as_text=True)


def test_suspension_ends_every_session_row(app, admin_client, sponsor):
    login_as(app.test_client(), sponsor)

    admin_client.post(f"/admin/users/{sponsor.id}/suspend")

    with app.app_context():
        owners = db.session.scalars(select(LoginSession.user_id)).all()
    assert sponsor.id not in owners


def test_idle_sessions_expire_on_the_server(app, client, sponsor):
    login_as(client, sponsor)
    with app.app_context():
        row = db.session.scalar(select(LoginSession))
        row.last_seen_at = row.last_seen_at - app.config["PERMANENT_SESSION_LIFETIME"] * 2
        db.session.commit()

    assert client.get("/sponsor/documents").location.startswith("/auth/login")


def test_a_forged_session_id_is_refused(app, sponsor):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = f"{sponsor.id}:1"
        session["_fresh"] = True
    assert client.get("/sponsor/documents").location.startswith("/auth/login")


def test_sessions_are_named_by_browser_and_system():
    chrome = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/156.0.0.0 Safari/537.36"
    )
    firefox = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:140.0) Gecko/20100101 Firefox/140.0"
    assert LoginSession(user_agent=chrome).browser == "Chrome on Linux"
    assert LoginSession(user_agent=firefox).browser == "Firefox on Windows"
    assert LoginSession(user_agent="").browser == "Unknown browser"
    assert LoginSession(user_agent="curl/8.0").browser == "curl/8.0"
