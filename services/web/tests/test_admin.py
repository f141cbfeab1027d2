"""Admin approval, status changes, roles, guards and the audit trail."""

from __future__ import annotations

import html
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from srcflask.extensions import db
from srcflask.models import ApiToken, AuditEvent, LifecycleError, Role, User, UserStatus

from .conftest import login_as


def get_user(app, user_id: int) -> User:
    with app.app_context():
        return db.session.get(User, user_id, options=[joinedload(User.approved_by)])


def audit_events(app) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()


def test_approval_flow_end_to_end(app, admin_client):
    newcomer = app.test_client()
    signed_up = newcomer.post(
        "/auth/signup",
        data={
            "name": "Nadia New",
            "email": "nadia@example.org",
            "organization": "",
            "password": "violet rivers run deep",
            "confirm_password": "violet rivers run deep",
            "role": "editor",
        },
    )
    assert signed_up.location == "/auth/status"
    assert "Your account is pending" in newcomer.get("/auth/status").get_data(as_text=True)
    assert newcomer.get("/editor/").location == "/auth/status"

    pending_page = admin_client.get("/admin/users?status=pending").get_data(as_text=True)
    assert "Nadia New" in pending_page
    with app.app_context():
        nadia_id = db.session.scalar(select(User.id).where(User.email == "nadia@example.org"))
    approved = admin_client.post(
        f"/admin/users/{nadia_id}/approve", data={"next": "/admin/users?status=pending"}
    )
    assert approved.location == "/admin/users?status=pending"

    # The change takes effect on her very next request, without logging in again.
    assert newcomer.get("/editor/documents").status_code == 200
    assert newcomer.get("/").location == "/editor/"
    nadia = get_user(app, nadia_id)
    assert nadia.status is UserStatus.APPROVED
    assert nadia.approved_by.name == "Ada Admin"
    assert nadia.approved_at is not None


def test_users_page_counts_by_status_and_searches(app, admin_client, make_user):
    make_user(name="Pat Pending", email="pat@example.org", status=UserStatus.PENDING)
    make_user(name="Penny Pending", email="penny@example.org", status=UserStatus.PENDING)
    make_user(name="Sue Suspended", status=UserStatus.SUSPENDED)

    page = admin_client.get("/admin/users").get_data(as_text=True)
    assert "Pat Pending" in page and "Penny Pending" in page and "Sue Suspended" not in page
    assert 'Pending <span class="count">2</span>' in page
    assert 'Suspended <span class="count">1</span>' in page
    assert 'Approved <span class="count">1</span>' in page  # the admin

    found = admin_client.get("/admin/users?status=all&q=PENNY").get_data(as_text=True)
    assert "Penny Pending" in found and "Pat Pending" not in found
    by_email = admin_client.get("/admin/users?status=pending&q=pat@").get_data(as_text=True)
    assert "Pat Pending" in by_email and "Penny Pending" not in by_email
    # LIKE wildcards in a search are taken literally.
    literal = admin_client.get("/admin/users?status=all&q=%25").get_data(as_text=True)
    assert "No users matching “%”." in literal and "Pat Pending" not in literal
    assert admin_client.get("/admin/users?status=bogus").status_code == 400


@pytest.mark.parametrize(
    ("start", "action", "end"),
    [
        (UserStatus.PENDING, "approve", UserStatus.APPROVED),
        (UserStatus.PENDING, "reject", UserStatus.REJECTED),
        (UserStatus.REJECTED, "approve", UserStatus.APPROVED),
        (UserStatus.APPROVED, "suspend", UserStatus.SUSPENDED),
        (UserStatus.SUSPENDED, "reinstate", UserStatus.APPROVED),
    ],
)
def test_status_actions_change_the_account_and_are_audited(
    app, admin_client, admin, make_user, start, action, end
):
    target = make_user(status=start, name="Tess Target")

    response = admin_client.post(
        f"/admin/users/{target.id}/{action}", environ_base={"REMOTE_ADDR": "203.0.113.9"}
    )

    assert response.status_code == 303
    assert get_user(app, target.id).status is end
    [event] = audit_events(app)
    assert (event.action, event.actor_id, event.target_user_id) == (
        f"user.{action}",
        admin.id,
        target.id,
    )
    assert event.ip_address == "203.0.113.9"
    assert event.details == {"from_status": start.value, "to_status": end.value}
    audit_page = admin_client.get("/admin/audit").get_data(as_text=True)
    assert f"user.{action}" in audit_page and "Tess Target" in audit_page
    assert "203.0.113.9" in audit_page


@pytest.mark.parametrize(
    ("start", "action"),
    [
        (UserStatus.APPROVED, "approve"),
        (UserStatus.APPROVED, "reject"),
        (UserStatus.PENDING, "suspend"),
        (UserStatus.APPROVED, "reinstate"),
    ],
)
def test_impossible_status_actions_are_refused_with_a_message(
    app, admin_client, make_user, start, action
):
    target = make_user(status=start, name="Tess Target")

    response = admin_client.post(f"/admin/users/{target.id}/{action}", follow_redirects=True)

    assert f"Cannot {action} Tess Target: the account is {start.value}." in html.unescape(
        response.get_data(as_text=True)
    )
    assert get_user(app, target.id).status is start
    assert audit_events(app) == []


def test_unknown_user_gives_404(admin_client):
    assert admin_client.post("/admin/users/99999/approve").status_code == 404
    assert admin_client.post("/admin/users/99999/role", data={"role": "editor"}).status_code == 404


def test_suspension_ends_the_users_active_session(app, admin_client, make_user):
    victim = make_user(role=Role.EDITOR)
    victim_client = login_as(app.test_client(), victim)
    assert victim_client.get("/editor/documents").status_code == 200

    admin_client.post(f"/admin/users/{victim.id}/suspend")

    # The old session is gone: the next request asks for a login, and says why.
    told = victim_client.get("/editor/", follow_redirects=True)
    assert told.request.path == "/auth/login"
    assert "An admin has suspended your account, so you were logged out." in told.get_data(
        as_text=True
    )
    # Said once: the login page after that is the plain one.
    assert "suspended" not in victim_client.get("/auth/login").get_data(as_text=True)
    relogin = victim_client.post(
        "/auth/login", data={"email": victim.email, "password": victim.password}
    )
    assert relogin.location == "/auth/status"
    assert "suspended" in victim_client.get("/auth/status").get_data(as_text=True)


def test_rejection_ends_the_users_active_session(app, admin_client, make_user):
    applicant = make_user(status=UserStatus.PENDING)
    applicant_client = login_as(app.test_client(), applicant)
    assert applicant_client.get("/auth/status").status_code == 200

    admin_client.post(f"/admin/users/{applicant.id}/reject")

    told = applicant_client.get("/auth/status", follow_redirects=True)
    assert told.request.path == "/auth/login"
    assert "An admin has turned down your account" in told.get_data(as_text=True)


def test_admin_cannot_suspend_or_demote_themself(app, admin_client, admin, make_user):
    make_user(role=Role.ADMIN)  # not the last admin: the self-guard alone refuses

    suspend = admin_client.post(f"/admin/users/{admin.id}/suspend", follow_redirects=True)
    demote = admin_client.post(
        f"/admin/users/{admin.id}/role", data={"role": "editor"}, follow_redirects=True
    )

    assert "You cannot suspend your own account." in suspend.get_data(as_text=True)
    assert "You cannot demote your own account." in demote.get_data(as_text=True)
    me = get_user(app, admin.id)
    assert (me.status, me.role) == (UserStatus.APPROVED, Role.ADMIN)


def test_the_last_active_admin_cannot_be_removed(app, admin, make_user):
    other = make_user(role=Role.ADMIN, status=UserStatus.SUSPENDED)
    with app.app_context():
        last = db.session.get(User, admin.id)
        for attempt in (lambda: last.suspend(None), lambda: last.change_role(Role.EDITOR, None)):
            with pytest.raises(LifecycleError, match="last active admin"):
                attempt()
        # With a second active admin, one may remove the other.
        second = db.session.get(User, other.id)
        second.reinstate(last)
        db.session.commit()
        last.suspend(second)
        assert last.status is UserStatus.SUSPENDED


def test_admins_can_remove_each_other_but_not_the_last(app, admin_client, admin, make_user):
    other = make_user(role=Role.ADMIN, name="Otto Other")
    assert (
        admin_client.post(f"/admin/users/{other.id}/role", data={"role": "sponsor"}).status_code
        == 303
    )
    assert get_user(app, other.id).role is Role.SPONSOR


def test_granting_admin_asks_for_confirmation(app, admin_client, editor):
    first = admin_client.post(
        f"/admin/users/{editor.id}/role",
        data={"role": "admin", "next": "/admin/users?status=approved"},
    )

    assert first.status_code == 200
    page = first.get_data(as_text=True)
    assert f"Make {editor.name} an admin?" in html.unescape(page)
    assert 'name="confirm" value="y"' in page
    assert get_user(app, editor.id).role is Role.EDITOR

    confirmed = admin_client.post(
        f"/admin/users/{editor.id}/role",
        data={"role": "admin", "confirm": "y", "next": "/admin/users?status=approved"},
    )
    assert confirmed.location == "/admin/users?status=approved"
    assert get_user(app, editor.id).role is Role.ADMIN
    [event] = audit_events(app)
    assert event.action == "user.role_change"
    assert event.details == {"from_role": "editor", "to_role": "admin"}


def test_role_change_to_a_non_admin_role_needs_no_confirmation(app, admin_client, editor):
    response = admin_client.post(f"/admin/users/{editor.id}/role", data={"role": "sponsor"})
    assert response.status_code == 303
    assert get_user(app, editor.id).role is Role.SPONSOR


def test_role_changes_read_as_sentences(admin_client, editor, sponsor):
    made = admin_client.post(
        f"/admin/users/{sponsor.id}/role", data={"role": "editor"}, follow_redirects=True
    )
    assert f"{sponsor.name} is now an editor." in made.get_data(as_text=True)
    again = admin_client.post(
        f"/admin/users/{sponsor.id}/role", data={"role": "editor"}, follow_redirects=True
    )
    assert f"{sponsor.name} is already an editor." in again.get_data(as_text=True)
    back = admin_client.post(
        f"/admin/users/{sponsor.id}/role", data={"role": "sponsor"}, follow_redirects=True
    )
    assert f"{sponsor.name} is now a sponsor." in back.get_data(as_text=True)


def test_bad_role_is_refused(admin_client, editor):
    response = admin_client.post(f"/admin/users/{editor.id}/role", data={"role": "overlord"})
    assert response.status_code == 400
    assert "Choose one of the roles" in response.get_data(as_text=True)


def test_return_address_cannot_leave_the_site(admin_client, make_user):
    target = make_user(status=UserStatus.PENDING)
    response = admin_client.post(
        f"/admin/users/{target.id}/approve", data={"next": "https://evil.example/"}
    )
    assert response.location == "/admin/users"


def test_user_supplied_text_is_escaped_in_admin_pages(admin_client, make_user):
    make_user(
        name="<script>alert(1)</script>", organization="<b>Bold</b>", status=UserStatus.PENDING
    )

    page = admin_client.get("/admin/users").get_data(as_text=True)

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;Bold&lt;/b&gt;" in page


def test_admin_overview_shows_counts_and_recent_activity(app, admin_client, make_user):
    target = make_user(status=UserStatus.PENDING, name="Rita Recent")
    admin_client.post(f"/admin/users/{target.id}/approve")
    page = admin_client.get("/admin/").get_data(as_text=True)
    assert "Recent activity" in page and "user.approve" in page and "Rita Recent" in page


@pytest.mark.parametrize("action", ["suspend", "reject"])
def test_suspension_and_rejection_revoke_api_tokens_for_good(app, admin_client, make_user, action):
    status = UserStatus.APPROVED if action == "suspend" else UserStatus.PENDING
    person = make_user(role=Role.SPONSOR, status=status)
    with app.app_context():
        token, secret = ApiToken.issue(db.session.get(User, person.id), "script", 30)
        db.session.add(token)
        db.session.commit()
    bearer = {"Authorization": f"Bearer {secret}"}

    admin_client.post(f"/admin/users/{person.id}/{action}")
    let_back_in = "reinstate" if action == "suspend" else "approve"
    admin_client.post(f"/admin/users/{person.id}/{let_back_in}")

    assert get_user(app, person.id).status is UserStatus.APPROVED
    response = app.test_client().get("/api/v1/me", headers=bearer)
    assert response.status_code == 401
    with app.app_context():
        assert db.session.scalar(select(ApiToken)).state == "revoked"
        revoked = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.revoke"))
        assert revoked.target_user_id == person.id
        assert revoked.details["reason"] == f"account.{action}"


def test_two_admins_removing_each_other_at_once_leave_one(app, admin, make_user):
    """The last-admin check and the change are one atomic step, on SQLite and Postgres."""
    other = make_user(role=Role.ADMIN, name="Otto Other")
    first_checked = threading.Event()
    outcomes: dict[str, str] = {}

    def suspend(actor_id: int, target_id: int, name: str, pause: float) -> None:
        with app.app_context():
            actor, target = db.session.get(User, actor_id), db.session.get(User, target_id)
            try:
                target.suspend(actor)
                first_checked.set()
                time.sleep(pause)  # the other admin acts while this change is not committed
                db.session.commit()
                outcomes[name] = "suspended"
            except LifecycleError as error:
                db.session.rollback()
                outcomes[name] = str(error)
            finally:
                first_checked.set()
                db.session.remove()

    first = threading.Thread(target=suspend, args=(admin.id, other.id, "first", 0.5))
    first.start()
    first_checked.wait(10)
    suspend(other.id, admin.id, "second", 0)
    first.join(10)

    assert outcomes["first"] == "suspended"
    assert "last active admin" in outcomes["second"]
    statuses = {get_user(app, admin.id).status, get_user(app, other.id).status}
    assert statuses == {UserStatus.APPROVED, UserStatus.SUSPENDED}


def test_admin_lists_past_the_last_page_show_the_last_page(admin_client, admin):
    """One paginator for every list: a page past the end is the last page, as elsewhere."""
    users = admin_client.get("/admin/users?status=all&page=999")
    assert users.status_code == 200
    assert admin.email in users.get_data(as_text=True)
    assert admin_client.get("/admin/users?status=all&page=abc").status_code == 200


# -- the audit trail in words ----------------------------------------------------


def test_the_audit_log_reads_as_sentences_and_escapes_names(app, admin_client, admin, make_user):
    target = make_user(role=Role.EDITOR, name="Edna <b>Editor</b>")
    admin_client.post(f"/admin/users/{target.id}/role", data={"role": "admin", "confirm": "y"})
    admin_client.post(f"/admin/users/{target.id}/suspend")

    page = admin_client.get("/admin/audit").get_data(as_text=True)

    assert (
        f"{admin.name} changed Edna &lt;b&gt;Editor&lt;/b&gt;&#39;s role from editor to admin."
        in page
    )
    assert f"{admin.name} suspended Edna &lt;b&gt;Editor&lt;/b&gt;." in page
    assert "previous: None" not in page and "<b>Editor</b>" not in page
    assert '<code class="audit-action">user.role_change</code>' in page


@pytest.mark.parametrize(
    ("action", "actor", "target", "details", "words"),
    [
        (
            "account.signup",
            "Sam <s@x.org>",
            "Sam <s@x.org>",
            {"role": "editor"},
            "Sam signed up as an editor.",
        ),
        (
            "account.signup_repeated",
            "anonymous",
            "Sam <s@x.org>",
            {},
            "Someone tried to sign up again with Sam's email address.",
        ),
        (
            "account.signup_repeated",
            "Mallory <s@x.org>",
            "Sam <s@x.org>",
            {"role": "sponsor"},
            "Mallory signed up again with Sam's email address, as a sponsor; "
            "the new request can only be rejected.",
        ),
        (
            "model.alias",
            "Ada <a@x.org>",
            "gemma:2",
            {"alias": "production", "previous": None},
            "Ada pointed the production alias at gemma:2.",
        ),
        (
            "model.alias",
            "command line",
            "gemma:2",
            {"alias": "production", "previous": "g:1"},
            "The command line pointed the production alias at gemma:2 (it was g:1).",
        ),
        (
            "api.limits",
            "Ada <a@x.org>",
            "API generation limits",
            {"max_new_tokens": [100, 200], "allow_sampling": [False, True]},
            "Ada changed the API generation limits: max new tokens from 100 to 200; "
            "allow sampling from off to on.",
        ),
        (
            "token.revoke",
            "Ada <a@x.org>",
            "Sam <s@x.org>",
            {"token": "ci", "prefix": "sfk_1", "reason": "account.suspend"},
            "Ada revoked Sam's API token “ci” when the account was suspended.",
        ),
        (
            "auth.login_locked",
            "anonymous",
            "Sam <s@x.org>",
            {"scope": "account_and_address", "limit": "5 per 1 minute"},
            "Logins to Sam's account were refused for a while: too many wrong passwords "
            "from one address (5 per 1 minute).",
        ),
        ("user.approve", "Ada <a@x.org>", "Sam <s@x.org>", {}, "Ada approved Sam's account."),
        ("something.new", "Ada <a@x.org>", "", {"n": 3}, "Ada: something.new (n: 3)."),
    ],
)
def test_each_audit_action_has_a_sentence(action, actor, target, details, words):
    from srcflask.accounts.audit import sentence
    from srcflask.models import AuditEvent

    event = AuditEvent(action=action, actor_label=actor, target_label=target, details=details)
    assert sentence(event) == words


def test_an_audit_event_says_where_it_came_from(app, admin_client):
    from srcflask.models.audit import record_event

    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        over_the_web = record_event("test.web", actor=None)
        db.session.commit()
        assert over_the_web.ip_address == "192.0.2.7"
    with app.app_context():
        offline = record_event("test.offline", actor=None)  # the command line, a job
        db.session.commit()
        assert offline.ip_address is None

    page = admin_client.get("/admin/audit").get_data(as_text=True)
    assert "192.0.2.7" in page
    assert '<span class="muted">this server</span>' in page
