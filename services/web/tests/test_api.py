"""JSON API v1: tokens, every endpoint, errors, limits, and the OpenAPI document."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.models import (
    ApiToken,
    AuditEvent,
    Document,
    Role,
    User,
    UserStatus,
)
from srcflask.models.api import MAX_ACTIVE_TOKENS, ApiLimits, hash_token
from srcflask.models.types import utcnow
from srcflask.registry import service as registry

from .factories import DocumentFactory


@pytest.fixture
def issue(app):
    """Give a user an API token directly; return the secret."""

    def make(account, days: int = 30, **fields) -> str:
        with app.app_context():
            token, secret = ApiToken.issue(db.session.get(User, account.id), "test token", days)
            for name, value in fields.items():
                setattr(token, name, value)
            db.session.add(token)
            db.session.commit()
        return secret

    return make


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def error_of(response) -> dict:
    return response.json["error"]


# -- tokens ----------------------------------------------------------------------


def test_a_token_is_shown_once_stored_as_a_hash_and_audited(app, sponsor_client, sponsor):
    made = sponsor_client.post(
        "/account/tokens", data={"name": "nightly import", "expires_in_days": "30"}
    )
    # Post/Redirect/Get: the secret is on the page the redirect leads to, once.
    assert made.status_code == 303 and made.location == "/account/tokens"
    page = sponsor_client.get("/account/tokens")
    assert page.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token">(sfk_[\w-]+)<', page.get_data(as_text=True)).group(1)
    assert 'data-copy="new-token"' in page.get_data(as_text=True)
    with app.app_context():
        token = db.session.scalar(select(ApiToken))
        assert token.token_hash == hash_token(secret) and secret not in token.token_hash
        assert token.prefix == secret[:12] and token.user_id == sponsor.id
        assert timedelta(days=29) < token.expires_at - utcnow() <= timedelta(days=30)
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "token.create"))
        assert event.actor_id == sponsor.id and event.details["token"] == "nightly import"
    # Reloading shows the list without the secret, and makes no second token.
    listing = sponsor_client.get("/account/tokens").get_data(as_text=True)
    assert secret not in listing and f"{secret[:12]}…" in listing
    with app.app_context():
        assert len(db.session.scalars(select(ApiToken)).all()) == 1
    assert sponsor_client.get("/api/v1/me", headers=bearer(secret)).json["email"] == sponsor.email


@pytest.mark.parametrize(
    ("days", "message"),
    [("0", "from 1 to 365"), ("366", "from 1 to 365"), ("soon", "from 1 to 365")],
)
def test_token_expiry_must_be_between_1_and_365_days(sponsor_client, days, message):
    response = sponsor_client.post("/account/tokens", data={"name": "x", "expires_in_days": days})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)


def test_the_default_expiry_is_90_days(app, sponsor_client):
    page = sponsor_client.get("/account/tokens").get_data(as_text=True)
    [field] = re.findall(r"<input[^>]*name=\"expires_in_days\"[^>]*>", page)
    assert 'value="90"' in field and 'max="365"' in field


def test_last_use_is_recorded_and_shown(app, sponsor_client, sponsor, issue):
    secret = issue(sponsor)
    sponsor_client.get("/api/v1/me", headers=bearer(secret))
    with app.app_context():
        assert db.session.scalar(select(ApiToken.last_used_at)) is not None
    assert (
        "—"
        not in sponsor_client.get("/account/tokens")
        .get_data(as_text=True)
        .split("<tbody>")[1]
        .split("</tr>")[0]
        .split("<td")[5]
    )


def test_revoking_a_token_stops_it_at_once(app, sponsor_client, sponsor, issue):
    secret = issue(sponsor)
    assert sponsor_client.get("/api/v1/me", headers=bearer(secret)).status_code == 200
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))

    sponsor_client.post(f"/account/tokens/{token_id}/revoke")

    response = sponsor_client.get("/api/v1/me", headers=bearer(secret))
    assert response.status_code == 401
    assert error_of(response)["message"] == "The API token is invalid, expired or revoked."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    with app.app_context():
        assert (
            db.session.scalar(select(AuditEvent.action).where(AuditEvent.action == "token.revoke"))
            == "token.revoke"
        )


def test_nobody_revokes_another_users_token(app, sponsor, editor_client, issue):
    issue(sponsor)
    with app.app_context():
        token_id = db.session.scalar(select(ApiToken.id))
    assert editor_client.post(f"/account/tokens/{token_id}/revoke").status_code == 404


def test_expired_and_unknown_tokens_get_401(client, sponsor, issue):
    expired = issue(sponsor, expires_at=utcnow() - timedelta(seconds=1))
    for header in (bearer(expired), bearer("sfk_not-a-real-token"), {"Authorization": "Basic x"}):
        response = client.get("/api/v1/me", headers=header)
        assert response.status_code == 401, header
        assert error_of(response)["code"] == "unauthorized"


def test_suspension_revokes_a_token_and_reinstatement_does_not_revive_it(
    client, admin_client, sponsor, issue
):
    secret = issue(sponsor)
    admin_client.post(f"/admin/users/{sponsor.id}/suspend")

    cut = client.get("/api/v1/me", headers=bearer(secret))
    assert cut.status_code == 401
    assert "revoked" in error_of(cut)["message"]

    admin_client.post(f"/admin/users/{sponsor.id}/reinstate")
    assert client.get("/api/v1/me", headers=bearer(secret)).status_code == 401
    assert client.get("/api/v1/me", headers=bearer(issue(sponsor))).status_code == 200


def test_a_demoted_users_token_loses_those_rights(client, admin_client, sponsor, issue):
    secret = issue(sponsor)
    assert (
        client.post(
            "/api/v1/documents", json={"title": "Before"}, headers=bearer(secret)
        ).status_code
        == 201
    )
    admin_client.post(f"/admin/users/{sponsor.id}/role", data={"role": "editor"})
    refused = client.post("/api/v1/documents", json={"title": "After"}, headers=bearer(secret))
    assert refused.status_code == 403
    assert error_of(refused)["message"] == "Only sponsors can do this."


def test_cookie_sessions_need_csrf_tokens_on_the_api_but_bearer_tokens_do_not(
    app_factory, make_user, issue
):
    app = app_factory(WTF_CSRF_ENABLED=True)
    account = make_user(role=Role.SPONSOR)
    browser = app.test_client()
    page = browser.get("/auth/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    browser.post(
        "/auth/login",
        data={"email": account.email, "password": account.password, "csrf_token": csrf},
    )
    assert browser.get("/api/v1/me").status_code == 200  # reading needs no CSRF token
    # Logging in starts a new session, and with it a new CSRF secret.
    page = browser.get("/account/tokens").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    forged = browser.post("/api/v1/documents", json={"title": "Forged"})
    assert forged.status_code == 400
    assert error_of(forged)["code"] == "csrf_failed"
    with_header = browser.post(
        "/api/v1/documents", json={"title": "Mine"}, headers={"X-CSRFToken": csrf}
    )
    assert with_header.status_code == 201

    program = app.test_client()
    secret = issue(account)
    assert (
        program.post(
            "/api/v1/documents", json={"title": "Scripted"}, headers=bearer(secret)
        ).status_code
        == 201
    )


# -- documents -------------------------------------------------------------------


@pytest.fixture
def tokens(sponsor, editor, admin, issue) -> dict[str, dict]:
    return {
        "sponsor": bearer(issue(sponsor)),
        "editor": bearer(issue(editor)),
        "admin": bearer(issue(admin)),
    }


def test_documents_end_to_end_through_the_api(
    app, client, tokens, editor, production_model, run_jobs
):
    created = client.post(
        "/api/v1/documents",
        headers=tokens["sponsor"],
        json={"title": "Quarterly report", "body": "Sales rose.", "editor_id": editor.id},
    )
    assert created.status_code == 201
    document = created.json
    assert document["machine_text"]["status"] == "queued"
    assert document["machine_text"]["queue_position"] == 1
    assert document["editor"] == {"id": editor.id, "name": "Eddie Editor"}

    run_jobs()
    machine_text = client.get(
        f"/api/v1/documents/{document['id']}/revisions/1/machine-text", headers=tokens["editor"]
    ).json
    assert machine_text["status"] == "done" and machine_text["text"]
    assert machine_text["model_version"] == production_model
    assert machine_text["settings"]["num_beams"] == 5
    assert machine_text["started_at"] and machine_text["finished_at"]

    listing = client.get("/api/v1/documents?status=done", headers=tokens["editor"]).json
    assert [item["id"] for item in listing["items"]] == [document["id"]]
    assert listing["total"] == 1 and listing["pages"] == 1

    review = client.post(
        f"/api/v1/machine-texts/{machine_text['id']}/review",
        headers=tokens["editor"],
        json={"decision": "edit", "text": "The end."},
    )
    assert review.status_code == 201
    assert (review.json["decision"], review.json["revision"]) == ("edited", 2)
    again = client.post(
        f"/api/v1/machine-texts/{machine_text['id']}/review",
        headers=tokens["editor"],
        json={"decision": "accept"},
    )
    assert again.status_code == 409

    revisions = client.get(
        f"/api/v1/documents/{document['id']}/revisions", headers=tokens["sponsor"]
    ).json["items"]
    assert [(r["number"], r["origin"]) for r in revisions] == [(2, "edited"), (1, "save")]
    assert revisions[0]["body"] == "Sales rose.\n\nThe end."  # a paragraph after a full stop

    patched = client.patch(
        f"/api/v1/documents/{document['id']}",
        headers=tokens["sponsor"],
        json={"title": "Quarterly report, final", "editor_id": None},
    )
    assert patched.status_code == 200
    assert patched.json["revision"] == 3 and patched.json["editor"] is None
    assert (
        client.get(f"/api/v1/documents/{document['id']}", headers=tokens["editor"]).status_code
        == 404
    )  # unassigned: gone

    assert (
        client.delete(f"/api/v1/documents/{document['id']}", headers=tokens["sponsor"]).status_code
        == 204
    )
    assert (
        client.get(f"/api/v1/documents/{document['id']}", headers=tokens["admin"]).status_code
        == 404
    )
    with app.app_context():
        assert db.session.get(Document, document["id"]).is_deleted


def test_api_reviews_keep_what_the_editor_typed_and_write_more_only_when_asked(
    client, tokens, editor, production_model, run_jobs, model_script
):
    model_script.text = "The fence stays."
    document = client.post(
        "/api/v1/documents",
        headers=tokens["sponsor"],
        json={
            "title": "Options",
            "body": "a) Repair it.\nb) Replace it.\nc)",
            "editor_id": editor.id,
        },
    ).json
    run_jobs()
    machine_text = client.get(
        f"/api/v1/documents/{document['id']}/revisions/1/machine-text", headers=tokens["editor"]
    ).json

    # Accept with a changed text is an edit: what the editor typed is what is added.
    review = client.post(
        f"/api/v1/machine-texts/{machine_text['id']}/review",
        headers=tokens["editor"],
        json={"decision": "accept", "text": "Leave it as it is."},
    )
    assert review.status_code == 201
    assert (review.json["decision"], review.json["revision"]) == ("edited", 2)
    second = client.get(
        f"/api/v1/documents/{document['id']}/revisions", headers=tokens["sponsor"]
    ).json["items"][0]
    assert second["body"] == "a) Repair it.\nb) Replace it.\nc) Leave it as it is."  # same line

    # The decision's revision has no machine text until someone asks; then it has.
    missing = client.get(
        f"/api/v1/documents/{document['id']}/revisions/2/machine-text", headers=tokens["sponsor"]
    )
    assert missing.status_code == 404
    assert "an editor's decision made it" in error_of(missing)["message"]
    assert run_jobs() == 0
    refused = client.post(
        f"/api/v1/documents/{document['id']}/machine-text", headers=tokens["admin"]
    )
    assert refused.status_code == 403
    asked = client.post(
        f"/api/v1/documents/{document['id']}/machine-text", headers=tokens["sponsor"]
    )
    assert asked.status_code == 202 and asked.json["status"] == "queued"
    again = client.post(
        f"/api/v1/documents/{document['id']}/machine-text", headers=tokens["editor"]
    )
    assert again.status_code == 409
    assert run_jobs() == 1


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "title", "Missing data for required field."),
        ({"title": ""}, "title", "Length must be between 1 and 200."),
        ({"title": "   "}, "title", "Must not be blank."),
        ({"title": "t" * 201}, "title", "Length must be between 1 and 200."),
        ({"title": "ok", "body": "b" * 20_001}, "body", "Longer than maximum length 20000."),
        ({"title": "ok\x00"}, "title", "Text must not contain NUL characters."),
        ({"title": "ok", "colour": "red"}, "colour", "Unknown field."),
        ({"title": "ok", "editor_id": "3"}, "editor_id", "Not a valid integer."),
        ({"title": "ok", "editor_id": 0}, "editor_id", "Must be greater than or equal to 1"),
    ],
)
def test_invalid_documents_get_422_naming_the_field(client, tokens, body, field, message):
    response = client.post("/api/v1/documents", json=body, headers=tokens["sponsor"])
    assert response.status_code == 422
    assert message in " ".join(error_of(response)["fields"][field])


def test_a_document_without_a_body_has_no_machine_text_to_wait_for(client, tokens, run_jobs):
    created = client.post("/api/v1/documents", json={"title": "Later"}, headers=tokens["sponsor"])

    assert created.status_code == 201
    assert created.json["machine_text"] is None
    assert created.json["machine_text_status"] is None
    assert run_jobs() == 0
    missing = client.get(
        f"/api/v1/documents/{created.json['id']}/revisions/1/machine-text",
        headers=tokens["sponsor"],
    )
    assert missing.status_code == 404
    assert "nothing to continue yet" in error_of(missing)["message"]


def test_an_editor_who_is_not_approved_is_refused(client, tokens, make_user):
    pending = make_user(role=Role.EDITOR, status=UserStatus.PENDING)
    response = client.post(
        "/api/v1/documents", json={"title": "x", "editor_id": pending.id}, headers=tokens["sponsor"]
    )
    assert response.status_code == 422
    assert error_of(response)["message"] == "Choose an approved editor, or nobody yet."


def test_an_empty_patch_is_refused(app, client, tokens, sponsor):
    with app.app_context():
        document_id = DocumentFactory(owner=db.session.get(User, sponsor.id)).id
    response = client.patch(f"/api/v1/documents/{document_id}", json={}, headers=tokens["sponsor"])
    assert response.status_code == 422
    assert "Give at least one of title" in str(error_of(response)["fields"])


def test_oversized_requests_get_a_json_413(app_factory, make_user, issue):
    app = app_factory(MAX_CONTENT_LENGTH=4096)
    secret = issue(make_user(role=Role.SPONSOR))
    response = app.test_client().post(
        "/api/v1/documents", json={"title": "x" * 5000}, headers=bearer(secret)
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "request_entity_too_large"


def test_unknown_api_paths_and_methods_answer_in_json(client, tokens):
    missing = client.get("/api/v1/nothing-here", headers=tokens["sponsor"])
    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    wrong = client.put("/api/v1/me", headers=tokens["sponsor"])
    assert wrong.status_code == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_reviewing_a_machine_text_that_is_not_ready_is_a_conflict(
    app, client, tokens, sponsor, editor
):
    with app.app_context():
        document = DocumentFactory(
            owner=db.session.get(User, sponsor.id),
            editor=db.session.get(User, editor.id),
            machine_text__status="running",
        )
        machine_text_id = document.revisions[0].machine_text.id
    response = client.post(
        f"/api/v1/machine-texts/{machine_text_id}/review",
        json={"decision": "accept"},
        headers=tokens["editor"],
    )
    assert response.status_code == 409
    assert error_of(response)["message"] == "The machine text is not ready to review yet."


# -- generation ------------------------------------------------------------------


def test_generate_writes_at_once_when_the_model_is_free(client, tokens, production_model):
    response = client.post(
        "/api/v1/generate",
        headers=tokens["editor"],
        json={
            "prompt": "How do I mow my lawn?",
            "settings": {"strategy": "greedy", "max_new_tokens": 8},
        },
    )
    assert response.status_code == 200
    job = response.json
    assert job["status"] == "done" and job["model_version"] == production_model
    assert 0 < job["generated_tokens"] <= 8 and job["settings"]["strategy"] == "greedy"


def test_generate_queues_a_job_when_the_model_is_busy(
    app, client, tokens, production_model, run_jobs
):
    with app.app_context():
        generator = registry.generator_for(registry.production_version())
    holding, release = threading.Event(), threading.Event()

    def hold_the_model():
        with generator.reserved():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold_the_model)
    holder.start()
    holding.wait(5)
    try:
        response = client.post(
            "/api/v1/generate", headers=tokens["sponsor"], json={"prompt": "Dear customer,"}
        )
    finally:
        release.set()
        holder.join()

    assert response.status_code == 202
    job_id = response.json["id"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job_id}"
    assert client.get(f"/api/v1/jobs/{job_id}", headers=tokens["sponsor"]).json["status"] == (
        "queued"
    )
    run_jobs()
    done = client.get(f"/api/v1/jobs/{job_id}", headers=tokens["sponsor"]).json
    assert done["status"] == "done" and done["text"] is not None
    assert client.get(f"/api/v1/jobs/{job_id}", headers=tokens["editor"]).status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}", headers=tokens["admin"]).status_code == 200


def set_limits(app, **values) -> None:
    with app.app_context():
        limits = ApiLimits.current()
        for name, value in values.items():
            setattr(limits, name, value)
        db.session.merge(limits)
        db.session.commit()


@pytest.mark.parametrize(
    ("body", "where", "message"),
    [
        ({"prompt": "x" * 51}, None, "The prompt is longer than 50 characters."),
        (
            {"prompt": "hi", "settings": {"max_new_tokens": 33}},
            "max_new_tokens",
            "must be at most 32 here",
        ),
        ({"prompt": "hi", "settings": {"num_beams": 4}}, "num_beams", "must be at most 3 here"),
        (
            {"prompt": "hi", "settings": {"strategy": "sample"}},
            "strategy",
            "sampling is turned off here",
        ),
        (
            {"prompt": "hi", "settings": {"strategy": "beam", "num_beams": 1}},
            "num_beams",
            "must be between 2 and 16 for beam search",
        ),
        (
            {"prompt": "hi", "settings": {"temperature": 9}},
            "temperature",
            "Must be greater than or equal to 0.01 and less than or equal to 5.0.",
        ),
        ({"prompt": "hi", "settings": {"beams": 2}}, "beams", "Unknown field."),
        ({"prompt": "   "}, "prompt", "Must not be blank."),
    ],
)
def test_generate_keeps_within_the_limits_admins_set(app, client, tokens, body, where, message):
    set_limits(app, max_prompt_characters=50, max_new_tokens=32, max_beams=3, allow_sampling=False)
    response = client.post("/api/v1/generate", json=body, headers=tokens["sponsor"])
    assert response.status_code == 422
    error = error_of(response)
    if where is None:
        assert error["message"] == message
    else:
        problems = error["fields"].get("settings", error["fields"])
        found = problems.get(where) if isinstance(problems, dict) else problems
        assert message in " ".join(found), error


def test_generate_budget_is_per_person_whatever_the_token(
    app_factory, make_user, issue, production_model
):
    app = app_factory(RATELIMIT_ENABLED=True)
    set_limits(app, requests_per_minute=2)
    person = make_user()
    client = app.test_client()
    body = {"prompt": "Hi", "settings": {"strategy": "greedy", "max_new_tokens": 2}}
    codes = [
        client.post("/api/v1/generate", json=body, headers=bearer(issue(person))).status_code
        for _ in range(3)
    ]
    assert codes[2] == 429  # a fresh token does not bring a fresh budget


def test_active_tokens_per_person_are_capped(app, sponsor_client, sponsor, issue):
    for _ in range(MAX_ACTIVE_TOKENS - 1):
        issue(sponsor)
    expired = issue(sponsor, days=1, expires_at=utcnow() - timedelta(days=1))
    assert expired
    form = {"name": "one more", "expires_in_days": "30"}
    assert sponsor_client.post("/account/tokens", data=form).status_code == 303

    refused = sponsor_client.post("/account/tokens", data=form)

    assert refused.status_code == 422
    assert f"{MAX_ACTIVE_TOKENS} active tokens" in refused.get_data(as_text=True)
    with app.app_context():
        active = [t for t in db.session.scalars(select(ApiToken)).all() if t.usable]
    assert len(active) == MAX_ACTIVE_TOKENS


def test_generate_is_rate_limited_per_person(app_factory, make_user, issue, production_model):
    app = app_factory(RATELIMIT_ENABLED=True)
    set_limits(app, requests_per_minute=2)
    first, second = make_user(), make_user()
    one, other = bearer(issue(first)), bearer(issue(second))
    client = app.test_client()
    body = {"prompt": "Hi", "settings": {"strategy": "greedy", "max_new_tokens": 2}}
    codes = [client.post("/api/v1/generate", json=body, headers=one).status_code for _ in range(3)]
    assert codes[2] == 429 and codes[:2] != [429, 429]
    limited = client.post("/api/v1/generate", json=body, headers=one)
    assert error_of(limited)["code"] == "rate_limited" and error_of(limited)["retry_after"] > 0
    assert client.post("/api/v1/generate", json=body, headers=other).status_code != 429


def test_admins_set_the_limits_on_a_page_and_it_is_audited(app, admin_client):
    response = admin_client.post(
        "/admin/api",
        data={
            "max_prompt_characters": "500",
            "max_new_tokens": "40",
            "max_beams": "2",
            "requests_per_minute": "5",
        },
    )
    assert response.status_code == 303
    with app.app_context():
        limits = ApiLimits.current()
        assert (
            limits.max_prompt_characters,
            limits.max_new_tokens,
            limits.max_beams,
            limits.allow_sampling,
            limits.requests_per_minute,
        ) == (500, 40, 2, False, 5)
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "api.limits"))
        assert event.details["max_new_tokens"] == [128, 40]
    page = admin_client.get("/admin/api").get_data(as_text=True)
    assert 'value="40"' in page


# -- models and users ------------------------------------------------------------


def test_models_are_listed_and_admins_move_aliases(
    app, client, tokens, production_model, tiny_models
):
    with app.app_context():
        registry.import_model(str(tiny_models["gpt2"]), "tiny-chat", actor=None)
    listed = client.get("/api/v1/models", headers=tokens["editor"]).json
    assert listed["production"] == production_model
    assert [v["label"] for v in listed["items"]] == ["tiny-chat:2", "tiny-chat:1"]

    moved = client.post(
        "/api/v1/models/tiny-chat/aliases",
        headers=tokens["admin"],
        json={"version": 2, "alias": "production"},
    )
    assert moved.status_code == 200 and moved.json["aliases"] == ["production"]
    assert client.get("/api/v1/models", headers=tokens["editor"]).json["production"] == (
        "tiny-chat:2"
    )
    missing = client.post(
        "/api/v1/models/tiny-chat/aliases",
        headers=tokens["admin"],
        json={"version": 9, "alias": "production"},
    )
    assert missing.status_code == 404
    bad = client.post(
        "/api/v1/models/tiny-chat/aliases",
        headers=tokens["admin"],
        json={"version": 1, "alias": "Prod!"},
    )
    assert bad.status_code == 422 and "alias" in error_of(bad)["fields"]


def test_only_admins_see_where_a_model_was_imported_from(client, tokens, tiny_models, app):
    with app.app_context():
        registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None)

    for role in ("sponsor", "editor"):
        listed = client.get("/api/v1/models", headers=tokens[role])
        assert listed.status_code == 200
        [version] = listed.json["items"]
        assert version["label"] == "tiny:1" and version["source"] is None, role
        assert str(tiny_models["gpt2"]) not in listed.get_data(as_text=True), role
    [version] = client.get("/api/v1/models", headers=tokens["admin"]).json["items"]
    assert version["source"] == str(tiny_models["gpt2"])
    moved = client.post(
        "/api/v1/models/tiny/aliases", headers=tokens["admin"], json={"version": 1, "alias": "x"}
    )
    assert moved.json["source"] == str(tiny_models["gpt2"])
    schema = client.get("/api/v1/openapi.json").json["components"]["schemas"]["ModelVersion"]
    assert "admins only" in schema["properties"]["source"]["description"]


def test_admins_manage_users_through_the_api(app, client, tokens, make_user, admin):
    applicant = make_user(name="Petra Pending", status=UserStatus.PENDING)
    pending = client.get("/api/v1/users?status=pending", headers=tokens["admin"]).json
    assert [u["name"] for u in pending["items"]] == ["Petra Pending"]
    found = client.get("/api/v1/users?q=PETRA", headers=tokens["admin"]).json
    assert found["total"] == 1

    approved = client.post(f"/api/v1/users/{applicant.id}/approve", headers=tokens["admin"])
    assert approved.status_code == 200 and approved.json["status"] == "approved"
    conflict = client.post(f"/api/v1/users/{applicant.id}/approve", headers=tokens["admin"])
    assert conflict.status_code == 409
    assert "the account is approved" in error_of(conflict)["message"]

    unconfirmed = client.post(
        f"/api/v1/users/{applicant.id}/role", headers=tokens["admin"], json={"role": "admin"}
    )
    assert unconfirmed.status_code == 409
    promoted = client.post(
        f"/api/v1/users/{applicant.id}/role",
        headers=tokens["admin"],
        json={"role": "admin", "confirm_admin": True},
    )
    assert promoted.json["role"] == "admin"
    self_suspend = client.post(f"/api/v1/users/{admin.id}/suspend", headers=tokens["admin"])
    assert self_suspend.status_code == 409
    assert error_of(self_suspend)["message"] == "You cannot suspend your own account."
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action)).all()
    assert "user.approve" in actions and "user.role_change" in actions


# -- the OpenAPI document and its page ------------------------------------------


def test_the_openapi_document_describes_every_api_route(app, client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    documented = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if method in ("get", "post", "patch", "delete", "put")
    }
    routes = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/")
        and rule.endpoint.split(".")[0] not in ("api-docs", "api_pages")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routes
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]


def test_the_docs_page_is_served_without_any_cdn(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "POST</span> <code>/api/v1/generate</code>" in page
    assert "DocumentCreate" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)
    assert "<script>" not in page


def test_the_docs_page_renders_markdown_and_shows_schemas_and_curl_examples(client):
    page = client.get("/api/v1/docs").get_data(as_text=True)
    # The description's `code` is code, not backticks.
    assert "<code>Authorization: Bearer &lt;token&gt;</code>" in page
    # Nowhere a backtick: summaries, in the contents too, and field descriptions are rendered.
    assert "`" not in page
    assert "granting admin needs <code>confirm_admin: true</code>." in page
    # Each response names its schema; each operation has a curl example.
    assert '<code>201</code> Created: <a href="#schema-Document">Document</a>' in page
    assert page.count("data-curl") == page.count('class="card api-operation"')
    assert "curl -X POST &#34;$SRCFLASK_URL/api/v1/documents&#34;" in page
    assert "-d &#39;{&#34;title&#34;: &#34;text&#34;}&#39;" in page
    # Contents grouped by tag.
    assert "<h2>Contents</h2>" in page and "<h3>Documents</h3>" in page


def test_docs_markdown_is_parts_the_template_escapes(client):
    from srcflask.api.pages import markdown

    assert markdown("Use `<script>` and **bold <b>**.\n\nSecond") == [
        [
            ("text", "Use "),
            ("code", "<script>"),
            ("text", " and "),
            ("strong", "bold <b>"),
            ("text", "."),
        ],
        [("text", "Second")],
    ]


def test_generate_with_a_model_missing_from_the_store_queues_instead_of_a_500(
    app, client, tokens, production_model, run_jobs
):
    import shutil

    with app.app_context():
        shutil.rmtree(registry.artifact_path(registry.production_version()))
    body = {"prompt": "Hello", "settings": {"strategy": "greedy", "max_new_tokens": 2}}

    response = client.post("/api/v1/generate", json=body, headers=tokens["sponsor"])

    assert response.status_code == 202
    run_jobs()
    job = client.get(response.headers["Location"], headers=tokens["sponsor"]).json
    assert job["status"] == "failed" and "could not be loaded" in job["error"]


# -- many documents at once, and edits that started from an older revision -----------


def test_documents_are_imported_through_the_api_all_or_none(
    app, client, tokens, editor, production_model
):
    from srcflask.models import Document

    bad = client.post(
        "/api/v1/documents/import",
        json={
            "documents": [
                {"title": "Fine"},
                {"title": ""},
                {"title": "T", "x": 1},
                {"title": "T", "body": "nul \u0000 here"},
                {"title": "\ud800"},
            ]
        },
        headers=tokens["sponsor"],
    )
    assert bad.status_code == 422
    assert error_of(bad)["fields"]["documents"] == {
        "1": ["The title is missing."],
        "2": ["Unknown field(s): x."],
        "3": ["body must be text without NUL characters or broken Unicode."],
        "4": [
            "title must be text without NUL characters or broken Unicode.",
            "The title is missing.",
        ],
    }
    not_objects = client.post(
        "/api/v1/documents/import", json={"documents": [7]}, headers=tokens["sponsor"]
    )
    assert not_objects.status_code == 422
    assert error_of(not_objects)["fields"]["documents"] == {"0": ["Not a valid mapping type."]}
    with app.app_context():
        assert db.session.scalar(select(Document)) is None

    good = client.post(
        "/api/v1/documents/import",
        json={
            "documents": [
                {"title": "One", "body": "Text one.", "editor_email": editor.email},
                {"title": "Two", "body": ""},
            ]
        },
        headers=tokens["sponsor"],
    )
    assert good.status_code == 201
    items = good.json["items"]
    assert [(i["title"], i["machine_text_status"]) for i in items] == [
        ("One", "queued"),
        ("Two", None),
    ]
    assert items[0]["editor"]["id"] == editor.id
    editors_try = client.post(
        "/api/v1/documents/import", json={"documents": [{"title": "X"}]}, headers=tokens["editor"]
    )
    assert editors_try.status_code == 403


def test_an_api_edit_from_an_older_revision_is_refused_with_409(client, tokens):
    created = client.post(
        "/api/v1/documents", json={"title": "T", "body": "One."}, headers=tokens["sponsor"]
    ).json
    url = f"/api/v1/documents/{created['id']}"
    first = client.patch(url, json={"body": "Two.", "base_revision": 1}, headers=tokens["sponsor"])
    assert first.status_code == 200 and first.json["revision"] == 2

    sponsor = tokens["sponsor"]
    stale = client.patch(url, json={"body": "Three.", "base_revision": 1}, headers=sponsor)
    assert stale.status_code == 409
    assert "send the change with base_revision 2" in error_of(stale)["message"]
    only_base = client.patch(url, json={"base_revision": 2}, headers=tokens["sponsor"])
    assert only_base.status_code == 422


def test_the_docs_examples_never_take_the_host_from_the_request(app, client):
    page = client.get("/api/v1/docs", headers={"Host": "evil.example"}).get_data(as_text=True)
    assert "evil.example" not in page
    assert "export SRCFLASK_URL=" in page

    app.config["PUBLIC_URL"] = "https://srcflask.example.org/"
    page = client.get("/api/v1/docs", headers={"Host": "evil.example"}).get_data(as_text=True)
    assert "evil.example" not in page
    assert "curl -X GET &#34;https://srcflask.example.org/api/v1/me&#34;" in page
    assert "export SRCFLASK_URL=" not in page
