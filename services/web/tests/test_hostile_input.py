"""Hostile input gets a clear 4xx (or succeeds), never a 500, on every kind of route."""

from __future__ import annotations

import io
import threading
import time

import pytest
from sqlalchemy import func, select

from srcflask.documents import service
from srcflask.extensions import db
from srcflask.models import (
    Document,
    MachineTextStatus,
    Review,
    Revision,
    User,
    UserStatus,
)

from .conftest import login_as
from .factories import DocumentFactory

DEEP = 100_000


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def error_message(response) -> str:
    if response.is_json:
        return response.json["error"]["message"]
    return response.get_data(as_text=True)


@pytest.fixture
def document_id(app, sponsor, editor):
    with app.app_context():
        owner = db.session.get(User, sponsor.id)
        return DocumentFactory(owner=owner, editor=db.session.get(User, editor.id)).id


# -- JSON that cannot be handled --------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/documents", "/auth/login", "/sponsor/documents/new"])
def test_deeply_nested_json_is_a_400(sponsor_client, path, sponsor, app):
    headers = {"Content-Type": "application/json"}
    if path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {issue_token(app, sponsor)}"
    deep = '{"title": ' + nested(DEEP) + "}"

    response = sponsor_client.post(path, data=deep, headers=headers)

    assert response.status_code == 400
    assert "nested" in error_message(response)


@pytest.mark.parametrize("path", ["/api/v1/documents", "/sponsor/documents/new"])
def test_integers_with_thousands_of_digits_are_a_4xx(sponsor_client, sponsor, app, path):
    headers = {"Content-Type": "application/json"}
    if path.startswith("/api/"):
        headers["Authorization"] = f"Bearer {issue_token(app, sponsor)}"
    for digits in (30, 3000, 10_000):
        body = '{"title": "Huge", "body": "Text.", "editor_id": ' + "9" * digits + "}"
        response = sponsor_client.post(path, data=body, headers=headers)
        assert response.status_code in (400, 422), (digits, response.status_code)


def test_ids_of_2_to_the_63_in_form_fields_are_refused_with_a_message(sponsor_client, document_id):
    for value in (str(2**63), str(2**64 + 5), "9" * 40, "-" + str(2**63)):
        response = sponsor_client.post(
            f"/sponsor/documents/{document_id}/edit",
            data={"title": "T", "body": "Some words.", "editor_id": value},
        )
        assert response.status_code == 422, value
        assert "Choose an approved editor" in response.get_data(as_text=True)
        assigned = sponsor_client.post(
            f"/sponsor/documents/{document_id}/editor", data={"editor_id": value}
        )
        assert assigned.status_code < 500, value


# -- files and JSON where a form is expected ------------------------------------------


@pytest.mark.parametrize("path", ["/auth/login", "/auth/signup"])
def test_a_file_part_where_text_is_expected_is_refused(client, path):
    response = client.post(
        path,
        data={
            "email": (io.BytesIO(b"someone@example.org"), "email.txt"),
            "password": (io.BytesIO(b"a quiet lighthouse"), "password.txt"),
            "name": "Nora",
            "confirm_password": "a quiet lighthouse",
            "role": "sponsor",
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert "file" in error_message(response)


@pytest.mark.parametrize(
    "body",
    [
        {"email": 5, "password": 7},
        {"email": {"$ne": None}, "password": ["a", "b"]},
        {"email": None, "password": True},
        ["email", "password"],
        "just a string",
        12,
    ],
)
def test_json_posted_to_the_login_form_gets_a_4xx(client, body):
    response = client.post("/auth/login", json=body)
    assert 400 <= response.status_code < 500


def test_json_posted_to_a_document_form_saves_or_is_refused(app, sponsor_client):
    numbers = sponsor_client.post(
        "/sponsor/documents/new", json={"title": 2026, "body": 42, "editor_id": ""}
    )
    assert numbers.status_code == 303
    objects = sponsor_client.post(
        "/sponsor/documents/new", json={"title": {"a": 1}, "body": ["x"], "editor_id": []}
    )
    assert objects.status_code == 400
    assert "text" in error_message(objects)
    with app.app_context():
        assert db.session.scalars(select(Document.title)).all() == ["2026"]


@pytest.mark.parametrize("where", ["form", "json", "query"])
def test_nul_characters_are_refused_everywhere(sponsor_client, where):
    fields = {"title": "Nul\x00title", "body": "B\x00dy", "editor_id": ""}
    if where == "form":
        response = sponsor_client.post("/sponsor/documents/new", data=fields)
    elif where == "json":
        response = sponsor_client.post("/sponsor/documents/new", json=fields)
    else:
        response = sponsor_client.get("/sponsor/documents?q=a%00b")
    assert response.status_code == 400
    assert "NUL" in error_message(response)


# -- return addresses -------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/admin/users\r\nSet-Cookie: x=1", "/admin/\nusers", "/a\tb"])
def test_control_characters_in_next_fall_back_to_the_page(app, admin_client, make_user, target):
    person = make_user(status=UserStatus.PENDING)

    response = admin_client.post(f"/admin/users/{person.id}/approve", data={"next": target})

    assert response.status_code == 303
    assert response.location == "/admin/users"
    with app.app_context():
        assert db.session.get(User, person.id).is_approved


# -- the same document from many tabs at once ---------------------------------------------


def slow_down_revision_numbering(monkeypatch, seconds: float = 0.15):
    """Widen the window between reading the newest revision and adding the next one."""
    original = service.latest_revision

    def slow(document):
        revision = original(document)
        time.sleep(seconds)
        return revision

    monkeypatch.setattr(service, "latest_revision", slow)


def run_together(calls) -> list:
    results: list = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index, call):
        start.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_parallel_saves_of_one_document_are_numbered_one_after_another(
    app, sponsor, editor, document_id, monkeypatch
):
    slow_down_revision_numbering(monkeypatch)
    tabs = [login_as(app.test_client(), sponsor) for _ in range(4)]

    def save(tab, n):
        return lambda: (
            tab.post(
                f"/sponsor/documents/{document_id}/edit",
                data={"title": "Shared", "body": f"Version {n}.", "editor_id": str(editor.id)},
            ).status_code
        )

    codes = run_together([save(tab, n) for n, tab in enumerate(tabs)])

    assert codes == [303] * 4
    with app.app_context():
        numbers = db.session.scalars(
            select(Revision.number).where(Revision.document_id == document_id)
        ).all()
        assert sorted(numbers) == [1, 2, 3, 4, 5]
        document = db.session.get(Document, document_id)
        latest = service.latest_revision(document)
        assert latest.body == document.body


def test_parallel_reviews_of_one_machine_text_record_one_decision(
    app, editor, document_id, monkeypatch
):
    with app.app_context():
        machine_text = service.latest_revision(db.session.get(Document, document_id)).machine_text
        machine_text.status, machine_text.text = MachineTextStatus.DONE, "The next sentence."
        db.session.commit()
    slow_down_revision_numbering(monkeypatch)
    tabs = [login_as(app.test_client(), editor) for _ in range(3)]

    def review(tab):
        return lambda: (
            tab.post(
                f"/editor/documents/{document_id}/review",
                data={"decision": "accept"},
            ).status_code
        )

    codes = run_together([review(tab) for tab in tabs])

    # One decision is recorded; the other tabs are told it was already made.
    assert sorted(codes) == [303, 409, 409]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Review)) == 1
        numbers = db.session.scalars(
            select(Revision.number).where(Revision.document_id == document_id)
        ).all()
        assert sorted(numbers) == [1, 2]


def issue_token(app, account) -> str:
    from srcflask.models import ApiToken

    with app.app_context():
        token, secret = ApiToken.issue(db.session.get(User, account.id), "t", 30)
        db.session.add(token)
        db.session.commit()
    return secret
