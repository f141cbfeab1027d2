"""The command-line tools: create-admin and seed-demo."""

from __future__ import annotations

import re

from sqlalchemy import select

from srcflask.extensions import db
from srcflask.models import AuditEvent, Role, User, UserStatus


def test_create_admin_from_the_environment(app, runner, monkeypatch):
    monkeypatch.setenv("SRCFLASK_ADMIN_PASSWORD", "an admin passphrase here")

    result = runner.invoke(args=["create-admin", "--email", "Boss@Example.org", "--name", "Bo"])

    assert result.exit_code == 0, result.output
    assert "Created admin Bo <boss@example.org>" in result.output
    client = app.test_client()
    response = client.post(
        "/auth/login", data={"email": "boss@example.org", "password": "an admin passphrase here"}
    )
    assert response.location == "/admin/"
    with app.app_context():
        assert db.session.scalar(select(AuditEvent.action)) == "user.create_admin"


def test_create_admin_prompts_for_the_password(app, runner, monkeypatch):
    monkeypatch.delenv("SRCFLASK_ADMIN_PASSWORD", raising=False)
    result = runner.invoke(
        args=["create-admin", "--email", "a@example.org", "--name", "A"],
        input="prompted passphrase ok\nprompted passphrase ok\n",
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert (user.role, user.status) == (Role.ADMIN, UserStatus.APPROVED)
        assert user.check_password("prompted passphrase ok")


def test_create_admin_refuses_weak_passwords_and_taken_emails(runner, monkeypatch, sponsor):
    monkeypatch.setenv("SRCFLASK_ADMIN_PASSWORD", "password1")
    weak = runner.invoke(args=["create-admin", "--email", "x@example.org", "--name", "X"])
    assert weak.exit_code != 0 and "too common" in weak.output

    monkeypatch.setenv("SRCFLASK_ADMIN_PASSWORD", "a fine long passphrase")
    taken = runner.invoke(args=["create-admin", "--email", sponsor.email, "--name", "X"])
    assert taken.exit_code != 0 and "exists" in taken.output


def test_seed_demo_creates_approved_accounts_with_random_passwords(app, runner):
    result = runner.invoke(args=["seed-demo"])

    assert result.exit_code == 0, result.output
    logins = dict(re.findall(r"(\S+@demo\.srcflask\.test)\s+password: (\S+)", result.output))
    assert len(logins) == 3 and len(set(logins.values())) == 3
    for email, password in logins.items():
        response = app.test_client().post(
            "/auth/login", data={"email": email, "password": password}
        )
        assert response.status_code == 303, email
    # Running it again keeps the same logins and prints them again.
    again = runner.invoke(args=["seed-demo"])
    assert dict(re.findall(r"(\S+@demo\.srcflask\.test)\s+password: (\S+)", again.output)) == (
        logins
    )
    reset = runner.invoke(args=["seed-demo", "--reset"])
    new = dict(re.findall(r"(\S+@demo\.srcflask\.test)\s+password: (\S+)", reset.output))
    assert set(new) == set(logins) and not set(new.values()) & set(logins.values())


def test_seed_demo_is_refused_in_production(app_factory):
    app = app_factory(ENV_NAME="production")
    result = app.test_cli_runner().invoke(args=["seed-demo"])
    assert result.exit_code != 0
    assert "refused in production" in result.output
    with app.app_context():
        assert db.session.scalar(select(User)) is None
