"""The document workflow: save, machine text in the background, review, history."""

from __future__ import annotations

import html
import logging
import re
import shutil

import pytest
from sqlalchemy import event, select

from srcflask.extensions import db
from srcflask.jobs.work import NO_PRODUCTION_MODEL
from srcflask.ml.settings import DEFAULT_PRESET, PRESETS
from srcflask.models import (
    Decision,
    Document,
    MachineText,
    MachineTextStatus,
    Review,
    Revision,
    RevisionOrigin,
    Role,
    User,
    UserStatus,
)

from .conftest import login_as
from .factories import DocumentFactory


def create(client, title="Quarterly report", body="Sales rose in the north.", editor_id=""):
    return client.post(
        "/sponsor/documents/new", data={"title": title, "body": body, "editor_id": editor_id}
    )


def doc_id_from(response) -> int:
    return int(re.search(r"/sponsor/documents/(\d+)", response.location).group(1))


def machine_texts(app, document_id: int) -> list[MachineText]:
    with app.app_context():
        return db.session.scalars(
            select(MachineText)
            .join(Revision)
            .where(Revision.document_id == document_id)
            .order_by(Revision.number)
        ).all()


def revisions(app, document_id: int) -> list[Revision]:
    with app.app_context():
        return db.session.scalars(
            select(Revision).where(Revision.document_id == document_id).order_by(Revision.number)
        ).all()


# -- save -> queued -> done -----------------------------------------------------


def test_save_returns_at_once_and_the_machine_text_arrives_later(
    app, sponsor_client, production_model, run_jobs
):
    response = create(sponsor_client)

    assert response.status_code == 303
    document_id = doc_id_from(response)
    [queued] = machine_texts(app, document_id)
    assert queued.status is MachineTextStatus.QUEUED  # the request did not wait for the model
    assert app.extensions["srcflask.jobs"].submitted == [queued.id]
    state = sponsor_client.get(f"/documents/{document_id}/machine-text").json
    assert state["status"] == "queued" and state["queue_position"] == 1
    page = sponsor_client.get(response.location).get_data(as_text=True)
    assert "Waiting for the model" in page and "number 1 in the queue" in page
    assert 'data-status="queued"' in page

    assert run_jobs() == 1

    [done] = machine_texts(app, document_id)
    assert done.status is MachineTextStatus.DONE
    assert done.text and done.generated_tokens > 0
    cap = PRESETS[DEFAULT_PRESET].max_new_tokens
    assert done.settings["num_beams"] == 5 and done.settings["stop_at"] == "paragraph"
    assert done.max_new_tokens == cap
    assert done.attempts == 1 and done.started_at and done.finished_at
    state = sponsor_client.get(f"/documents/{document_id}/machine-text").json
    assert state["status"] == "done"
    assert state["text"] == done.text
    assert state["model_version"] == production_model
    assert state["error"] is None
    assert state["progress"] == {"tokens": done.generated_tokens, "max_tokens": cap}
    page = sponsor_client.get(response.location).get_data(as_text=True)
    assert html.escape(done.text, quote=True)[:20] in page
    assert f"Written by {production_model}" in page


def test_the_document_revision_and_queued_text_are_one_transaction(app, sponsor_client):
    document_id = doc_id_from(create(sponsor_client, body="Body"))
    with app.app_context():
        document = db.session.get(Document, document_id)
        [revision] = document.revisions
        assert (revision.number, revision.title, revision.body) == (1, document.title, "Body")
        assert revision.author_id == document.owner_id
        assert revision.machine_text.status is MachineTextStatus.QUEUED


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": "", "body": "x"}, "This field is required."),
        ({"title": "   ", "body": "x"}, "This field is required."),
        ({"title": "t" * 201, "body": "x"}, "Field cannot be longer than 200 characters."),
        (
            {"title": "ok", "body": "b" * 20_345},
            "The document is 20,345 characters long; the most is 20,000. Shorten it by 345",
        ),
        ({"title": "ok", "body": "x", "editor_id": "999"}, "Choose an approved editor"),
        ({"title": "ok", "body": "x", "editor_id": "abc"}, "Choose an approved editor"),
    ],
)
def test_bad_documents_are_refused_next_to_the_field(app, sponsor_client, data, message):
    response = sponsor_client.post("/sponsor/documents/new", data={"editor_id": ""} | data)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Document)) is None


def test_only_approved_editors_can_be_assigned(app, sponsor_client, make_user):
    pending_editor = make_user(role=Role.EDITOR, status=UserStatus.PENDING)
    another_sponsor = make_user(role=Role.SPONSOR)
    for user in (pending_editor, another_sponsor):
        response = create(sponsor_client, editor_id=str(user.id))
        assert response.status_code == 422
    page = sponsor_client.get("/sponsor/documents/new").get_data(as_text=True)
    assert pending_editor.email not in page and another_sponsor.email not in page


@pytest.mark.parametrize("body", ["", "  \n\t  "])
def test_an_empty_body_is_not_sent_to_the_model(
    app, sponsor_client, production_model, run_jobs, body
):
    response = create(sponsor_client, title="How do I mow my lawn?", body=body)
    document_id = doc_id_from(response)

    assert machine_texts(app, document_id) == []
    assert run_jobs() == 0
    page = sponsor_client.get(response.location, follow_redirects=True).get_data(as_text=True)
    assert "nothing for the model to continue yet" in page  # the flash after saving
    assert "There is nothing to continue yet: the body is empty." in page
    state = sponsor_client.get(f"/documents/{document_id}/machine-text").get_json()
    assert state["status"] is None and state["nothing_to_continue"] is True
    # Nothing to retry: a clear message, not an error page.
    retried = sponsor_client.post(
        f"/documents/{document_id}/machine-text/retry", follow_redirects=True
    )
    assert retried.status_code == 200
    assert "nothing to continue yet" in retried.get_data(as_text=True)


def test_writing_a_body_later_queues_the_machine_text(app, sponsor_client, production_model):
    document_id = doc_id_from(create(sponsor_client, title="Minutes", body=""))
    sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Minutes", "body": "The board met on Tuesday.", "editor_id": ""},
    )
    [queued] = machine_texts(app, document_id)
    assert queued.status is MachineTextStatus.QUEUED


# -- editing --------------------------------------------------------------------


def test_a_long_body_is_refused_with_the_text_kept_and_the_box_is_never_cut(sponsor_client):
    form = sponsor_client.get("/sponsor/documents/new").get_data(as_text=True)
    box = re.search(r"<textarea[^>]*>", form).group(0)
    assert "maxlength" not in box and 'data-count-max="20000"' in box

    long = "word " * 4_100  # 20,500 characters
    response = sponsor_client.post(
        "/sponsor/documents/new", data={"title": "Long", "body": long, "editor_id": ""}
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Shorten it by 500 characters. Nothing was saved; your text is kept here." in page
    assert long.rstrip() in page  # the whole text is still in the box


def test_the_edit_form_is_prefilled_and_an_untouched_save_changes_nothing(
    app, sponsor_client, editor
):
    document_id = doc_id_from(
        create(
            sponsor_client,
            title="Plan <b>A</b>",
            body="Line one\nLine two & more",
            editor_id=str(editor.id),
        )
    )
    page = sponsor_client.get(f"/sponsor/documents/{document_id}/edit").get_data(as_text=True)
    assert 'value="Plan &lt;b&gt;A&lt;/b&gt;"' in page
    assert "Line one\nLine two &amp; more</textarea>" in page
    assert f'<option selected value="{editor.id}">' in page

    response = sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={
            "title": "Plan <b>A</b>",
            "body": "Line one\r\nLine two & more",
            "editor_id": str(editor.id),
        },
        follow_redirects=True,
    )

    assert "Nothing in the text changed" in response.get_data(as_text=True)
    assert len(revisions(app, document_id)) == 1
    with app.app_context():
        document = db.session.get(Document, document_id)
        assert (document.title, document.body, document.editor_id) == (
            "Plan <b>A</b>",
            "Line one\nLine two & more",
            editor.id,
        )


def test_each_save_is_a_new_revision_and_nothing_is_overwritten(app, sponsor_client):
    document_id = doc_id_from(create(sponsor_client, title="Notes", body="First draft."))
    for body in ("Second draft.", "Third draft,\nwith a new line."):
        sponsor_client.post(
            f"/sponsor/documents/{document_id}/edit",
            data={"title": "Notes", "body": body, "editor_id": ""},
        )

    history = revisions(app, document_id)
    assert [r.body for r in history] == [
        "First draft.",
        "Second draft.",
        "Third draft,\nwith a new line.",
    ]
    assert [r.number for r in history] == [1, 2, 3]
    # Each newer save supersedes the machine text still queued for the one before.
    assert [mt.status for mt in machine_texts(app, document_id)] == [
        MachineTextStatus.SUPERSEDED,
        MachineTextStatus.SUPERSEDED,
        MachineTextStatus.QUEUED,
    ]
    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "History" in page and page.count("See changes") == 2


def test_a_revision_page_shows_a_readable_diff(app, sponsor_client):
    document_id = doc_id_from(
        create(sponsor_client, title="Soup", body="Chop two onions.\nAdd salt.\nServe hot.")
    )
    sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={
            "title": "Soup for four",
            "body": "Chop three onions.\nAdd salt.\nServe hot.\nEnjoy!",
            "editor_id": "",
        },
    )

    page = sponsor_client.get(f"/documents/{document_id}/revisions/2").get_data(as_text=True)

    assert "Changes since revision 1" in page
    assert (
        '<del><span class="visually-hidden">removed: </span>two</del>'
        '<ins><span class="visually-hidden">added: </span>three</ins>'
    ) in page
    assert '<div class="diff-line diff-added" role="row">' in page and "<ins>Enjoy!</ins>" in page
    assert '<span class="visually-hidden">Added line</span>' in page
    assert "Title: <del>Soup</del> → <ins>Soup for four</ins>" in page
    assert "1 line added, 0 removed, 1 changed." in page
    first = sponsor_client.get(f"/documents/{document_id}/revisions/1").get_data(as_text=True)
    assert "First revision" in first
    # Its text as written: no line, blank or not, marked as added.
    assert "data-first-revision" in first and "diff-added" not in first
    assert sponsor_client.get(f"/documents/{document_id}/revisions/3").status_code == 404


def test_changing_the_editor_takes_access_away_at_once(app, sponsor_client, make_user):
    first = make_user(role=Role.EDITOR, name="First Editor")
    second = make_user(role=Role.EDITOR, name="Second Editor")
    first_client = login_as(app.test_client(), first)
    document_id = doc_id_from(create(sponsor_client, editor_id=str(first.id)))
    review_url = f"/editor/documents/{document_id}/review"
    assert first_client.get(review_url).status_code == 200
    assert "Quarterly report" in first_client.get("/editor/documents").get_data(as_text=True)

    sponsor_client.post(
        f"/sponsor/documents/{document_id}/editor", data={"editor_id": str(second.id)}
    )

    assert first_client.get(review_url).status_code == 404
    assert first_client.get(f"/documents/{document_id}/machine-text").status_code == 404
    assert "Quarterly report" not in first_client.get("/editor/documents").get_data(as_text=True)
    second_client = login_as(app.test_client(), second)
    assert second_client.get(review_url).status_code == 200


def test_soft_delete_asks_first_and_hides_the_document_everywhere(
    app, sponsor_client, editor, admin_client
):
    editor_client = login_as(app.test_client(), editor)
    document_id = doc_id_from(create(sponsor_client, editor_id=str(editor.id)))
    confirm = sponsor_client.get(f"/sponsor/documents/{document_id}/delete")
    assert "Delete “Quarterly report”?" in confirm.get_data(as_text=True)
    with app.app_context():
        assert not db.session.get(Document, document_id).is_deleted

    sponsor_client.post(f"/sponsor/documents/{document_id}/delete")

    with app.app_context():
        document = db.session.get(Document, document_id)
        assert document.is_deleted and document.deleted_at is not None
        assert len(document.revisions) == 1  # nothing is dropped
    for client, url in [
        (sponsor_client, f"/sponsor/documents/{document_id}"),
        (editor_client, f"/editor/documents/{document_id}/review"),
        (admin_client, f"/documents/{document_id}"),
    ]:
        assert client.get(url).status_code == 404
    for client, url in [
        (sponsor_client, "/sponsor/documents"),
        (editor_client, "/editor/documents"),
        (admin_client, "/admin/documents"),
    ]:
        assert "Quarterly report" not in client.get(url).get_data(as_text=True)


# -- failures and retry -----------------------------------------------------------


def test_without_a_production_model_the_text_fails_in_plain_words_and_can_be_retried(
    app, sponsor_client, tiny_models, run_jobs
):
    document_id = doc_id_from(create(sponsor_client))
    run_jobs()

    [failed] = machine_texts(app, document_id)
    assert failed.status is MachineTextStatus.FAILED
    assert failed.error == NO_PRODUCTION_MODEL
    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "No production model is set" in page and ">Retry</button>" in page
    assert "The document and this revision are saved" in page

    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
    retried = sponsor_client.post(
        f"/documents/{document_id}/machine-text/retry", follow_redirects=True
    )
    assert "queued again" in retried.get_data(as_text=True)
    assert machine_texts(app, document_id)[0].status is MachineTextStatus.QUEUED
    run_jobs()
    [done] = machine_texts(app, document_id)
    assert done.status is MachineTextStatus.DONE and done.error is None
    assert (
        sponsor_client.post(f"/documents/{document_id}/machine-text/retry", follow_redirects=True)
        .get_data(as_text=True)
        .count("Only a failed machine text can be retried.")
        == 1
    )


def test_an_engine_error_fails_only_the_document_that_caused_it(
    app, sponsor_client, production_model, run_jobs, model_script
):
    model_script.fail_if = lambda prompt: "poison" in prompt
    model_script.error = RuntimeError("CUDA out of memory")
    good = doc_id_from(create(sponsor_client, title="Good one"))
    bad = doc_id_from(create(sponsor_client, title="The poison pill"))
    also_good = doc_id_from(create(sponsor_client, title="Another good one"))

    run_jobs()

    assert machine_texts(app, good)[0].status is MachineTextStatus.DONE
    assert machine_texts(app, also_good)[0].status is MachineTextStatus.DONE
    [failed] = machine_texts(app, bad)
    assert failed.status is MachineTextStatus.FAILED
    assert failed.error == "The model could not write this machine text: CUDA out of memory"
    assert [r.title for r in revisions(app, bad)] == ["The poison pill"]  # the save stands


def pages_showing(app, client, document_id: int) -> dict[str, str]:
    """Everything a reader of the document is shown about its machine text."""
    return {
        "document": client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True),
        "state": client.get(f"/documents/{document_id}/machine-text").get_data(as_text=True),
        "revision": client.get(f"/documents/{document_id}/revisions/1").get_data(as_text=True),
        "stored": machine_texts(app, document_id)[0].error,
    }


def test_a_model_missing_from_the_store_fails_without_showing_server_paths(
    app, sponsor_client, production_model, run_jobs, caplog
):
    from srcflask.registry import service as registry

    with app.app_context():
        folder = registry.artifact_path(registry.production_version())
    shutil.rmtree(folder)
    document_id = doc_id_from(create(sponsor_client))

    with caplog.at_level(logging.ERROR):
        run_jobs()

    [failed] = machine_texts(app, document_id)
    assert failed.status is MachineTextStatus.FAILED
    assert failed.error.startswith(f"The model {production_model} could not be loaded: ")
    for where, text in pages_showing(app, sponsor_client, document_id).items():
        assert failed.error in html.unescape(text), where
        assert app.config["MODEL_STORE"] not in text and "/v1-" not in text, where
    assert str(folder) in caplog.text  # the log keeps every detail for admins


def test_a_file_error_while_writing_names_no_file(
    app, sponsor_client, production_model, run_jobs, model_script
):
    model_script.fail_if = lambda prompt: True
    model_script.error = PermissionError(
        13, "Permission denied", "/srv/srcflask/models/x/offload.bin"
    )
    document_id = doc_id_from(create(sponsor_client))
    run_jobs()

    for where, text in pages_showing(app, sponsor_client, document_id).items():
        assert "/srv/srcflask" not in text and "offload.bin" not in text, where
    assert machine_texts(app, document_id)[0].error == (
        "The model could not write this machine text: Permission denied"
    )


# -- display ---------------------------------------------------------------------


def test_machine_text_is_shown_as_escaped_text_with_its_line_breaks(
    app, sponsor_client, production_model, run_jobs, model_script
):
    model_script.text = "<script>alert('x')</script>\n<b>bold</b> line two"
    document_id = doc_id_from(create(sponsor_client))
    run_jobs()

    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert "<script>alert(" not in page and "<b>bold</b>" not in page
    assert (
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;\n&lt;b&gt;bold&lt;/b&gt; line two" in page
    )
    state = sponsor_client.get(f"/documents/{document_id}/machine-text").json
    assert state["text"] == "<script>alert('x')</script>\n<b>bold</b> line two"


# -- review ----------------------------------------------------------------------


@pytest.fixture
def reviewable(app, sponsor_client, editor, production_model, run_jobs, model_script):
    """A document assigned to `editor` whose machine text is written."""
    model_script.text = "and it rained all week."
    document_id = doc_id_from(
        create(sponsor_client, title="Weather", body="It was cold,", editor_id=str(editor.id))
    )
    run_jobs()
    return document_id


def test_the_review_page_shows_the_document_and_the_machine_text_once_in_the_edit_box(
    app, editor_client, reviewable
):
    page = editor_client.get(f"/editor/documents/{reviewable}/review").get_data(as_text=True)
    assert "It was cold," in page
    assert page.count("and it rained all week.") == 1
    assert ">and it rained all week.</textarea>" in page
    assert 'data-field="text-in-box"' in page and 'data-field="text"' not in page
    assert page.count("data-needs-done") == 3 and " disabled>" not in page


def test_accepting_appends_the_machine_text_as_the_editors_revision(
    app, editor_client, editor, sponsor_client, reviewable, run_jobs
):
    response = editor_client.post(
        f"/editor/documents/{reviewable}/review",
        data={"decision": "accept", "text": "and it rained all week.\n"},
        follow_redirects=True,
    )

    page = response.get_data(as_text=True)
    assert "Accepted: revision 2" in page
    added = '<blockquote class="machine-text added" data-added>and it rained all week.</blockquote>'
    assert added in page
    assert "No other document needs your review now." in page
    _, second = revisions(app, reviewable)
    assert second.body == "It was cold, and it rained all week."
    assert second.author_id == editor.id and second.origin is RevisionOrigin.ACCEPTED
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert (review.decision, review.editor_id, review.revision_id) == (
            Decision.ACCEPTED,
            editor.id,
            second.id,
        )
    # The decision's revision gets no machine text by itself: the review queue empties.
    assert len(machine_texts(app, reviewable)) == 1
    assert run_jobs() == 0
    page = sponsor_client.get(f"/sponsor/documents/{reviewable}").get_data(as_text=True)
    assert "It was cold, and it rained all week." in page
    assert "Accepted machine text" in page
    assert "No machine text for this revision: an editor's decision made it" in page
    assert "data-write-more" in page
    editor_list = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{reviewable}/review" not in editor_list

    # The sponsor asks for more: now the model writes for revision 2.
    response = sponsor_client.post(f"/documents/{reviewable}/machine-text/more", data={})
    assert response.status_code == 303
    assert machine_texts(app, reviewable)[1].status is MachineTextStatus.QUEUED
    assert run_jobs() == 1
    assert machine_texts(app, reviewable)[1].status is MachineTextStatus.DONE
    again = sponsor_client.post(
        f"/documents/{reviewable}/machine-text/more",
        data={},
        follow_redirects=True,
    )
    assert "The model has written for this revision already" in again.get_data(as_text=True)
    assert len(machine_texts(app, reviewable)) == 2


def test_accept_with_a_changed_box_saves_the_edit_and_says_so(app, editor_client, reviewable):
    response = editor_client.post(
        f"/editor/documents/{reviewable}/review",
        data={"decision": "accept", "text": "and it rained."},
        follow_redirects=True,
    )

    page = response.get_data(as_text=True)
    assert "Accepted with edits: revision 2" in page
    assert '<blockquote class="machine-text added" data-added>and it rained.</blockquote>' in page
    _, second = revisions(app, reviewable)
    assert second.body == "It was cold, and it rained."
    assert second.origin is RevisionOrigin.EDITED
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert (review.decision, review.text) == (Decision.EDITED, "and it rained.")


def test_only_the_sponsor_and_the_editor_ask_for_more(app, editor_client, admin_client, reviewable):
    editor_client.post(f"/editor/documents/{reviewable}/review", data={"decision": "accept"})
    page = admin_client.get(f"/documents/{reviewable}").get_data(as_text=True)
    assert "data-write-more" not in page
    refused = admin_client.post(f"/documents/{reviewable}/machine-text/more", data={})
    assert refused.status_code == 403
    assert len(machine_texts(app, reviewable)) == 1
    asked = editor_client.post(
        f"/documents/{reviewable}/machine-text/more",
        data={"next": "review"},
    )
    assert asked.status_code == 303 and asked.location.endswith(
        f"/editor/documents/{reviewable}/review"
    )
    assert len(machine_texts(app, reviewable)) == 2


def test_saving_an_edit_appends_the_editors_text(app, editor_client, reviewable):
    editor_client.post(
        f"/editor/documents/{reviewable}/review",
        data={"decision": "edit", "text": "and then the sun came out."},
    )
    _, second = revisions(app, reviewable)
    assert second.body == "It was cold, and then the sun came out."
    assert second.origin is RevisionOrigin.EDITED
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert (review.decision, review.text) == (Decision.EDITED, "and then the sun came out.")


def test_rejecting_leaves_the_document_as_it_was(app, editor_client, reviewable):
    editor_client.post(
        f"/editor/documents/{reviewable}/review", data={"decision": "reject", "text": ""}
    )
    assert len(revisions(app, reviewable)) == 1
    with app.app_context():
        assert db.session.scalar(select(Review.decision)) is Decision.REJECTED
    page = editor_client.get(f"/editor/documents/{reviewable}/review").get_data(as_text=True)
    assert "You rejected this machine text" in page


@pytest.mark.parametrize(
    ("data", "message", "code"),
    [
        ({"decision": "edit", "text": "   "}, "The edit box is empty: write the text to add", 409),
        ({"decision": "accept", "text": "  "}, "The edit box is empty: write the text to add", 409),
        ({"decision": "approve", "text": "x"}, "Not a valid choice", 422),
    ],
)
def test_bad_reviews_are_refused_with_a_message(editor_client, reviewable, data, message, code):
    response = editor_client.post(f"/editor/documents/{reviewable}/review", data=data)
    assert response.status_code == code
    assert message in response.get_data(as_text=True)


def test_a_machine_text_is_reviewed_once_and_only_when_ready(app, editor_client, editor, make_user):
    with app.app_context():
        owner = db.session.get(User, make_user(role=Role.SPONSOR).id)
        document_id = DocumentFactory(
            owner=owner, editor=db.session.get(User, editor.id), machine_text__status="running"
        ).id
    early = editor_client.post(
        f"/editor/documents/{document_id}/review", data={"decision": "accept"}
    )
    assert early.status_code == 409
    assert "not ready to review yet" in early.get_data(as_text=True)

    with app.app_context():
        db.session.scalar(select(MachineText)).status = MachineTextStatus.DONE
        db.session.commit()
    assert (
        editor_client.post(
            f"/editor/documents/{document_id}/review", data={"decision": "reject"}
        ).status_code
        == 303
    )
    again = editor_client.post(
        f"/editor/documents/{document_id}/review", data={"decision": "accept"}
    )
    assert again.status_code == 409


# -- lists -----------------------------------------------------------------------


def count_queries(app, client, url: str) -> int:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


@pytest.mark.parametrize(
    ("who", "url"),
    [
        ("sponsor", "/sponsor/documents"),
        ("editor", "/editor/documents"),
        ("admin", "/admin/documents"),
    ],
)
def test_lists_take_the_same_queries_for_2_or_20_documents(app, sponsor, editor, admin, who, url):
    accounts = {"sponsor": sponsor, "editor": editor, "admin": admin}
    client = login_as(app.test_client(), accounts[who])

    def add(count: int) -> None:
        with app.app_context():
            owner = db.session.get(User, sponsor.id)
            assigned = db.session.get(User, editor.id)
            for i in range(count):
                DocumentFactory(
                    owner=owner,
                    editor=assigned,
                    machine_text__status=["done", "queued", "failed"][i % 3],
                )

    add(2)
    few = count_queries(app, client, url)
    add(18)
    many = count_queries(app, client, url)

    assert few == many
    page = client.get(url).get_data(as_text=True)
    assert page.count("<tr data-row-document=") == 20
    assert "Ready" in page and "Queued" in page and "Failed" in page
    if who != "editor":
        assert "Eddie Editor" in page


def test_lists_filter_by_machine_text_status(app, sponsor_client, sponsor):
    with app.app_context():
        owner = db.session.get(User, sponsor.id)
        DocumentFactory(owner=owner, title="Finished one")
        DocumentFactory(owner=owner, title="Broken one", machine_text__status="failed")
    failed = sponsor_client.get("/sponsor/documents?status=failed").get_data(as_text=True)
    assert "Broken one" in failed and "Finished one" not in failed
    assert sponsor_client.get("/sponsor/documents?status=bogus").status_code == 400


# -- two tabs --------------------------------------------------------------------


def test_saving_over_a_newer_revision_is_refused_with_the_text_kept_and_the_differences(
    app, sponsor_client
):
    document_id = doc_id_from(create(sponsor_client, title="Plan", body="Step one.\nStep two."))
    first_tab = sponsor_client.get(f"/sponsor/documents/{document_id}/edit").get_data(as_text=True)
    assert 'name="base_revision" type="hidden" value="1"' in first_tab

    # The second tab saves revision 2...
    second = sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Plan", "body": "Step one.\nStep two, revised.", "base_revision": "1"},
    )
    assert second.status_code == 303
    # ...then the first tab saves what it had open (revision 1).
    stale = sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Plan", "body": "Step one.\nStep <two> from tab one.", "base_revision": "1"},
    )

    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "This document changed since you opened it" in page and "revision 2" in page
    assert "Step one.\nStep &lt;two&gt; from tab one.</textarea>" in page
    assert "data-conflict" in page and "data-diff-legend" in page
    # The changed line shows the words that differ, escaped.
    assert (
        'Step <del><span class="visually-hidden">removed: </span>two, revised.</del>'
        '<ins><span class="visually-hidden">added: </span>&lt;two&gt; from tab one.</ins>'
    ) in page
    assert 'name="base_revision" type="hidden" value="2"' in page
    assert [r.body for r in revisions(app, document_id)] == [
        "Step one.\nStep two.",
        "Step one.\nStep two, revised.",
    ]

    # Saving again, having seen the differences, replaces revision 2 knowingly.
    again = sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Plan", "body": "Step one.\nStep <two> from tab one.", "base_revision": "2"},
    )
    assert again.status_code == 303
    assert revisions(app, document_id)[-1].body == "Step one.\nStep <two> from tab one."


@pytest.mark.parametrize("base", ["", "abc", "-1"])
def test_an_edit_without_a_usable_base_revision_still_saves(app, sponsor_client, base):
    document_id = doc_id_from(create(sponsor_client, title="Plan", body="One."))
    response = sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Plan", "body": "Two.", "base_revision": base},
    )
    assert response.status_code == (409 if base == "-1" else 303)
