"""A second chance: another machine text in place of a rejected one, and undoing a decision."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.ml.settings import another_text_settings
from srcflask.models import AuditEvent, Document, MachineText, Review, Revision, Role
from srcflask.registry import service as registry

from . import test_api, test_review_loop

# Fixtures shared with those modules.
issue, tokens, written = test_api.issue, test_api.tokens, test_review_loop.written


def texts_of(app, document_id: int) -> list[MachineText]:
    with app.app_context():
        rows = db.session.scalars(
            select(MachineText)
            .join(Revision, Revision.id == MachineText.revision_id)
            .where(Revision.document_id == document_id)
            .order_by(MachineText.id)
        ).all()
        db.session.expunge_all()
        return rows


def events(app, action: str) -> list[dict]:
    with app.app_context():
        return [
            e.details
            for e in db.session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        ]


def reject(client, document_id: int):
    return client.post(f"/editor/documents/{document_id}/review", data={"decision": "reject"})


def age_reviews(app, seconds: int) -> None:
    """Make every review `seconds` older, as if its editor had waited."""
    with app.app_context():
        for review in db.session.scalars(select(Review)):
            review.created_at -= timedelta(seconds=seconds)
        db.session.commit()


# -- Write another ------------------------------------------------------------------


def test_after_a_rejection_another_text_is_written_and_the_first_stays_in_the_history(
    app, editor_client, sponsor_client, written, run_jobs, model_script
):
    [document_id] = written("The hall needs a new roof,", text="and the first text.")
    reject(editor_client, document_id)
    review_page = editor_client.get(f"/editor/documents/{document_id}/review").get_data(
        as_text=True
    )
    assert "data-write-another" in review_page

    answer = editor_client.post(
        f"/documents/{document_id}/machine-text/more",
        data={"next": "review"},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "The model is writing another text; the rejected one stays in the history." in answer
    first, second = texts_of(app, document_id)
    assert (first.number, second.number) == (1, 2)
    assert first.replaced_at is not None and second.replaced_at is None
    assert first.revision_id == second.revision_id

    model_script.text = "and the second text."
    assert run_jobs() == 1
    # The second is sampled, so it is not the first written again.
    settings = model_script.settings[-1]
    assert settings.strategy == "sample" and settings.best_of > 1

    needs = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{document_id}/review" in needs
    page = editor_client.get(f"/editor/documents/{document_id}/review").get_data(as_text=True)
    assert "and the second text." in page and "text 2" in page

    history = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "Text 1: rejected by" in history
    revision = sponsor_client.get(f"/documents/{document_id}/revisions/1").get_data(as_text=True)
    assert "Machine text 1 of 2" in revision and "and the first text." in revision
    assert "another was written in its place" in revision
    assert "Machine text 2 of 2" in revision and "and the second text." in revision

    [event] = events(app, "document.write_another")
    assert (event["document"], event["revision"], event["replaced"]) == (
        document_id,
        1,
        first.id,
    )
    audit = None
    with app.app_context():
        from srcflask.accounts.audit import sentence

        audit = sentence(
            db.session.scalar(
                select(AuditEvent).where(AuditEvent.action == "document.write_another")
            )
        )
    assert "asked for another machine text for revision 1 of document" in audit


def test_the_rejected_texts_review_still_counts_for_learning(
    app, editor_client, written, run_jobs, model_script
):
    [document_id] = written("The hall needs a new roof,", text="and the first text.")
    reject(editor_client, document_id)
    editor_client.post(f"/documents/{document_id}/machine-text/more")
    model_script.text = "and the second text."
    run_jobs()
    editor_client.post(f"/editor/documents/{document_id}/review", data={"decision": "accept"})
    with app.app_context():
        from srcflask.registry import reviews

        pairs = list(reviews.reviewed_pairs())
    assert [(p["decision"], p["machine_text"]) for p in pairs] == [
        ("rejected", "and the first text."),
        ("accepted", "and the second text."),
    ]


def test_the_sponsor_may_ask_for_another_text_too(
    app, sponsor_client, editor_client, written, run_jobs
):
    [document_id] = written("The hall needs a new roof,")
    reject(editor_client, document_id)
    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "data-write-another" in page
    sponsor_client.post(f"/documents/{document_id}/machine-text/more")
    assert run_jobs() == 1


def test_another_text_is_refused_until_the_text_is_rejected(
    app, editor_client, sponsor_client, written
):
    [document_id] = written("The hall needs a new roof,")
    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "data-write-another" not in page
    answer = sponsor_client.post(
        f"/documents/{document_id}/machine-text/more", follow_redirects=True
    ).get_data(as_text=True)
    assert "another text can be asked for once an editor rejects this one" in answer
    assert len(texts_of(app, document_id)) == 1


def test_a_revision_has_at_most_so_many_texts(app, editor_client, written, run_jobs):
    app.config["MACHINE_TEXTS_PER_REVISION"] = 2
    [document_id] = written("The hall needs a new roof,")
    reject(editor_client, document_id)
    editor_client.post(f"/documents/{document_id}/machine-text/more")
    run_jobs()
    reject(editor_client, document_id)
    answer = editor_client.post(
        f"/documents/{document_id}/machine-text/more", follow_redirects=True
    ).get_data(as_text=True)
    assert "The model has written 2 texts for this revision, the most it writes for one" in answer
    assert len(texts_of(app, document_id)) == 2


def test_the_api_asks_for_another_text_and_shows_its_number(
    app, client, tokens, editor, written, run_jobs
):
    [document_id] = written("The hall needs a new roof,")
    first = client.get(
        f"/api/v1/documents/{document_id}/revisions/1/machine-text", headers=tokens["editor"]
    ).json
    assert first["number"] == 1
    refused = client.post(
        f"/api/v1/documents/{document_id}/machine-text", headers=tokens["sponsor"]
    )
    assert refused.status_code == 409
    client.post(
        f"/api/v1/machine-texts/{first['id']}/review",
        headers=tokens["editor"],
        json={"decision": "reject"},
    )
    another = client.post(
        f"/api/v1/documents/{document_id}/machine-text", headers=tokens["sponsor"]
    )
    assert another.status_code == 202
    assert (another.json["number"], another.json["status"]) == (2, "queued")
    run_jobs()
    latest = client.get(
        f"/api/v1/documents/{document_id}/revisions/1/machine-text", headers=tokens["editor"]
    ).json
    assert (latest["id"], latest["reviewed"]) == (another.json["id"], None)
    # The rejected one can no longer be reviewed: it is not the latest.
    again = client.post(
        f"/api/v1/machine-texts/{first['id']}/review",
        headers=tokens["editor"],
        json={"decision": "accept"},
    )
    assert again.status_code == 409


def test_a_second_text_is_written_with_sampled_settings():
    from srcflask.ml.settings import PRESETS

    editor = PRESETS["editor"]
    another = another_text_settings(editor)
    assert another.strategy == "sample" and another.best_of == 4
    assert (another.stop_at, another.ban_markup, another.max_new_tokens) == (
        editor.stop_at,
        editor.ban_markup,
        editor.max_new_tokens,
    )
    creative = PRESETS["creative"]
    assert another_text_settings(creative) == creative  # sampled already: a new seed only


def test_jobs_read_the_second_texts_settings(app, editor_client, written):
    [document_id] = written("The hall needs a new roof,")
    reject(editor_client, document_id)
    editor_client.post(f"/documents/{document_id}/machine-text/more")
    [_, second] = texts_of(app, document_id)
    with app.app_context():
        version = registry.production_version()
        db.session.execute(
            MachineText.__table__.update()
            .where(MachineText.id == second.id)
            .values(claimed_by=work.worker_id())
        )
        [job] = work.MACHINE_TEXTS.inputs([second.id]).values()
        assert job.writer.version.id == version.id
        assert job.writer.settings == another_text_settings(registry.settings_for(version))
        assert job.prompt.endswith("The hall needs a new roof,")


# -- Undo -----------------------------------------------------------------------------


def test_an_editor_undoes_a_rejection_and_reviews_the_text_again(app, editor_client, written):
    [document_id] = written("The hall needs a new roof,")
    decided = reject(editor_client, document_id)
    page = editor_client.get(decided.location).get_data(as_text=True)
    assert "data-undo" in page and "the machine text comes back for your review" in page
    review_id = int(decided.location.rsplit("decided=", 1)[1])

    answer = editor_client.post(
        f"/editor/documents/{document_id}/reviews/{review_id}/undo", follow_redirects=True
    ).get_data(as_text=True)
    assert "Your decision is undone: the machine text needs your review again." in answer
    assert 'id="review-form"' in answer
    with app.app_context():
        assert db.session.scalar(select(Review)) is None
    needs = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{document_id}/review" in needs
    [event] = events(app, "document.undo_review")
    assert (event["decision"], event["revision"], event["removed_revision"]) == (
        "rejected",
        1,
        None,
    )


def test_undoing_an_accept_gives_the_document_its_text_back(
    app, editor_client, written, sponsor_client
):
    [document_id] = written("The hall needs a new roof,", text="and the roof is slate.")
    decided = editor_client.post(
        f"/editor/documents/{document_id}/review",
        data={"decision": "edit", "text": "and the roof is tin."},
    )
    review_id = int(decided.location.rsplit("decided=", 1)[1])
    # Back on the review page later, without the decision summary: Undo is still offered.
    later = editor_client.get(f"/editor/documents/{document_id}/review").get_data(as_text=True)
    assert "data-undo" in later and "revision 2 is removed" in later

    editor_client.post(f"/editor/documents/{document_id}/reviews/{review_id}/undo")
    with app.app_context():
        document = db.session.get(Document, document_id)
        assert document.body == "The hall needs a new roof,"
        assert [r.number for r in document.revisions] == [1]
        assert document.revisions[0].machine_text.review is None
    [event] = events(app, "document.undo_review")
    assert (event["decision"], event["text"], event["removed_revision"]) == (
        "edited",
        "and the roof is tin.",
        2,
    )
    # And it can be decided on again.
    again = editor_client.post(
        f"/editor/documents/{document_id}/review", data={"decision": "accept"}
    )
    assert again.status_code == 303
    with app.app_context():
        assert db.session.get(Document, document_id).body.endswith("and the roof is slate.")


def test_undo_is_refused_after_the_time_allowed(app, editor_client, written):
    [document_id] = written("The hall needs a new roof,")
    decided = reject(editor_client, document_id)
    review_id = int(decided.location.rsplit("decided=", 1)[1])
    age_reviews(app, app.config["REVIEW_UNDO_SECONDS"] + 1)
    page = editor_client.get(decided.location).get_data(as_text=True)
    assert "data-undo" not in page
    answer = editor_client.post(
        f"/editor/documents/{document_id}/reviews/{review_id}/undo", follow_redirects=True
    ).get_data(as_text=True)
    assert "Too late to undo: a decision can be undone for 5 minutes after it is made." in answer
    with app.app_context():
        assert db.session.scalar(select(Review)) is not None


def test_undo_is_refused_once_the_document_moved_on(app, editor_client, written, run_jobs):
    [document_id] = written("The hall needs a new roof,")
    decided = editor_client.post(
        f"/editor/documents/{document_id}/review", data={"decision": "accept"}
    )
    review_id = int(decided.location.rsplit("decided=", 1)[1])
    editor_client.post(f"/documents/{document_id}/machine-text/more")
    answer = editor_client.post(
        f"/editor/documents/{document_id}/reviews/{review_id}/undo", follow_redirects=True
    ).get_data(as_text=True)
    assert "The document changed after your decision" in answer
    with app.app_context():
        assert len(db.session.get(Document, document_id).revisions) == 2


def test_undo_after_another_text_was_asked_for_is_refused(app, editor_client, written):
    [document_id] = written("The hall needs a new roof,")
    review_id = int(reject(editor_client, document_id).location.rsplit("decided=", 1)[1])
    editor_client.post(f"/documents/{document_id}/machine-text/more")
    answer = editor_client.post(
        f"/editor/documents/{document_id}/reviews/{review_id}/undo", follow_redirects=True
    ).get_data(as_text=True)
    assert "another text asked for" in answer


def test_only_the_editor_who_decided_may_undo(
    app, client, editor_client, written, make_user, tokens
):
    [document_id] = written("The hall needs a new roof,")
    review_id = int(reject(editor_client, document_id).location.rsplit("decided=", 1)[1])
    other = make_user(role=Role.EDITOR)
    from .conftest import login_as

    other_client = app.test_client()
    login_as(other_client, other)
    assert (
        other_client.post(f"/editor/documents/{document_id}/reviews/{review_id}/undo").status_code
        == 404
    )
    # A review id that is not theirs (or undone already, in another tab): said, nothing done.
    answer = editor_client.post(
        f"/editor/documents/{document_id}/reviews/999999/undo", follow_redirects=True
    ).get_data(as_text=True)
    assert "There is no decision of yours to undo here: it may be undone already." in answer
    assert client.delete(f"/api/v1/reviews/{review_id}", headers=tokens["sponsor"]).status_code == (
        403
    )
    with app.app_context():
        assert db.session.scalar(select(Review)) is not None


def test_the_api_undoes_a_review(app, client, tokens, editor, written):
    [document_id] = written("The hall needs a new roof,")
    first = client.get(
        f"/api/v1/documents/{document_id}/revisions/1/machine-text", headers=tokens["editor"]
    ).json
    review = client.post(
        f"/api/v1/machine-texts/{first['id']}/review",
        headers=tokens["editor"],
        json={"decision": "accept"},
    ).json
    assert review["undo_until"] > review["created_at"]
    undone = client.delete(f"/api/v1/reviews/{review['id']}", headers=tokens["editor"])
    assert undone.status_code == 200
    assert (undone.json["id"], undone.json["reviewed"]) == (first["id"], None)
    gone = client.delete(f"/api/v1/reviews/{review['id']}", headers=tokens["editor"])
    assert gone.status_code == 404
    assert set(gone.json["error"]) >= {"code", "message"}


@pytest.mark.parametrize("review_id", ["0", "-1", "99999999999999999999", "x"])
def test_bad_review_ids_are_404s(client, tokens, review_id):
    response = client.delete(f"/api/v1/reviews/{review_id}", headers=tokens["editor"])
    assert response.status_code == 404
