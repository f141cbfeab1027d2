"""One person's burst of saves does not make everyone else wait behind it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from srcflask.documents import service
from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.models import Document, MachineText, Revision, User

from .conftest import login_as


def statuses(app, document_id: int) -> list[str]:
    """The machine-text status of each revision of a document, oldest first."""
    with app.app_context():
        rows = db.session.execute(
            select(MachineText.status)
            .join(Revision, Revision.id == MachineText.revision_id)
            .where(Revision.document_id == document_id)
            .order_by(Revision.number)
        ).all()
    return [row.status.value for row in rows]


def new_document(client, title: str, body: str = "The first words.") -> int:
    response = client.post(
        "/sponsor/documents/new", data={"title": title, "body": body, "editor_id": ""}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    return int(response.location.rstrip("/").split("/")[-1])


def edit(client, document_id: int, body: str):
    return client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Notes", "body": body, "editor_id": ""},
    )


def test_a_newer_save_supersedes_the_queued_machine_text(app, sponsor_client):
    document_id = new_document(sponsor_client, "Notes")
    for n in range(3):
        assert edit(sponsor_client, document_id, f"Version {n}.").status_code == 303

    assert statuses(app, document_id) == ["superseded"] * 3 + ["queued"]


def test_a_running_machine_text_finishes_when_a_newer_save_comes(app, sponsor_client):
    document_id = new_document(sponsor_client, "Notes")
    with app.app_context():
        assert work.claim(work.MACHINE_TEXTS, [], limit=8)  # the model has started on it

    edit(sponsor_client, document_id, "A newer version.")

    assert statuses(app, document_id) == ["running", "queued"]


def test_past_the_per_person_cap_saves_succeed_and_the_text_follows(
    app_factory, make_user, production_model_factory
):
    app = app_factory(JOB_MAX_QUEUED_PER_USER=2)
    production_model_factory(app)
    sponsor = make_user()
    client = login_as(app.test_client(), sponsor)

    ids = [new_document(client, f"Doc {n}") for n in range(4)]

    assert [statuses(app, i) for i in ids] == [["queued"], ["queued"], ["waiting"], ["waiting"]]
    page = client.get(f"/sponsor/documents/{ids[3]}", follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "this one follows as soon as one of them is done" in text
    state = client.get(f"/documents/{ids[3]}/machine-text").json
    assert state["status"] == "waiting" and state["queue_position"] is None

    with app.app_context():
        assert work.run_pending() == 4
    assert [statuses(app, i) for i in ids] == [["done"]] * 4


def test_jobs_are_claimed_round_robin_across_people(app, make_user):
    busy, patient = make_user(), make_user()
    busy_client = login_as(app.test_client(), busy)
    patient_client = login_as(app.test_client(), patient)
    busy_ids = [new_document(busy_client, f"Burst {n}") for n in range(6)]
    patient_id = new_document(patient_client, "Just one")

    state = patient_client.get(f"/documents/{patient_id}/machine-text").json
    assert state["queue_position"] == 2  # after the busy sponsor's first, not their sixth

    with app.app_context():
        claimed = work.claim(work.MACHINE_TEXTS, [], limit=2)
        document_of = {
            mt.id: mt.revision.document_id
            for mt in db.session.scalars(select(MachineText).where(MachineText.id.in_(claimed)))
        }
    assert sorted(document_of.values()) == sorted([busy_ids[0], patient_id])


@pytest.fixture
def production_model_factory(tiny_models):
    """Make a tiny model production on a given app."""
    from srcflask.registry import service as registry

    def make(app):
        with app.app_context():
            version = registry.import_model(str(tiny_models["llama"]), "tiny", actor=None).version
            registry.set_alias(version, "production", actor=None)

    return make


def test_service_queue_position_follows_the_fair_order(app, make_user):
    first, second = make_user(), make_user()
    with app.app_context():
        owner_one, owner_two = db.session.get(User, first.id), db.session.get(User, second.id)
        one = [service.create_document(owner_one, f"A{n}", "Text.", None) for n in range(3)]
        two = service.create_document(owner_two, "B", "Text.", None)
        positions = [
            service.queue_position(db.session.get(Document, d.id).revisions[0].machine_text)
            for d in [*one, two]
        ]
    assert positions == [1, 3, 4, 2]
