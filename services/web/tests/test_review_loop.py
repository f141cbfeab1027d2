"""The review loop: editors' queues and what each person sees after a decision."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from srcflask.documents.service import join_continuation
from srcflask.extensions import db
from srcflask.models import Review, Role, User, UserStatus

from .conftest import login_as
from .factories import DocumentFactory
from .test_documents import create, doc_id_from, revisions


@pytest.fixture
def written(app, sponsor_client, editor, production_model, run_jobs, model_script):
    """Write documents assigned to `editor` and run their machine text; return their ids."""

    def write(*bodies: str, text: str = "and it rained all week.") -> list[int]:
        model_script.text = text
        ids = [
            doc_id_from(
                create(sponsor_client, title=f"Doc {i}", body=body, editor_id=str(editor.id))
            )
            for i, body in enumerate(bodies)
        ]
        run_jobs()
        return ids

    return write


# -- joining accepted text -------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "continuation", "joined"),
    [
        ("It was cold.", "It rained.", "It was cold.\n\nIt rained."),
        ("It was cold.  ", " It rained. ", "It was cold.\n\nIt rained."),
        ("She asked: “Why?”", "Nobody knew.", "She asked: “Why?”\n\nNobody knew."),
        ("Steps:", "1. Chop.", "Steps:\n1. Chop."),
        ("The winners were:", "Anna and Tom.", "The winners were: Anna and Tom."),
        (
            "Options:\na) Repair.\nb) Replace.\nc) ",
            "Leave it.",
            "Options:\na) Repair.\nb) Replace.\nc) Leave it.",
        ),
        (
            "a) Repair.\nb) Replace.\nd)",
            "The fence stays.",
            "a) Repair.\nb) Replace.\nd) The fence stays.",
        ),
        ("Agenda\n\n4. ", "Any other business.", "Agenda\n\n4. Any other business."),
        ("- milk\n- eggs", "- flour", "- milk\n- eggs\n- flour"),
        ("1. Chop the onions.", "2. Fry them.", "1. Chop the onions.\n2. Fry them."),
        ("We chose (b)", " because it was cheaper.", "We chose (b) because it was cheaper."),
        ("It ended.", "- a list after prose", "It ended.\n\n- a list after prose"),
        ("It was cold,", "and it rained.", "It was cold, and it rained."),
        ("It was cold", ", and it rained.", "It was cold, and it rained."),
        ("First line\n", "Second.", "First line\n\nSecond."),
        ("First line", "\nSecond.", "First line\n\nSecond."),
        ("", "  Only text.", "Only text."),
        ("Body.", "   ", "Body."),
    ],
)
def test_accepted_text_starts_a_paragraph_after_a_finished_sentence(body, continuation, joined):
    assert join_continuation(body, continuation) == joined


def test_accepting_after_a_finished_sentence_adds_a_paragraph(app, editor_client, written):
    [document_id] = written("It was cold.", text="Then it rained.")
    editor_client.post(f"/editor/documents/{document_id}/review", data={"decision": "accept"})
    _, second = revisions(app, document_id)
    assert second.body == "It was cold.\n\nThen it rained."


# -- queues ----------------------------------------------------------------------


def test_the_editors_queues_count_and_list_what_needs_review_and_what_was_reviewed(
    app, editor_client, written
):
    first, second, third = written("One,", "Two,", "Three,")
    editor_client.post(f"/editor/documents/{first}/review", data={"decision": "reject"})

    page = editor_client.get("/editor/documents").get_data(as_text=True)
    assert 'Needs review <span class="count">2</span>' in page
    assert 'Reviewed <span class="count">1</span>' in page
    assert page.count("review-needed") == 2 and page.count(">Rejected</span>") == 1

    needs = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{second}/review" in needs
    assert f"/editor/documents/{third}/review" in needs
    assert f"/editor/documents/{first}/review" not in needs

    reviewed = editor_client.get("/editor/documents?review=reviewed").get_data(as_text=True)
    assert f"/editor/documents/{first}/review" in reviewed
    assert f"/editor/documents/{second}/review" not in reviewed


def test_the_queue_empties_after_a_decision_until_someone_asks_for_more(
    app, editor_client, written, run_jobs
):
    [document_id] = written("One,")
    editor_client.post(f"/editor/documents/{document_id}/review", data={"decision": "accept"})
    reviewed = editor_client.get("/editor/documents?review=reviewed").get_data(as_text=True)
    assert f"/editor/documents/{document_id}/review" in reviewed

    assert run_jobs() == 0  # the decision's revision gets no machine text by itself
    needs = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{document_id}/review" not in needs
    assert "Nothing needs your review now." in needs

    editor_client.post(f"/documents/{document_id}/machine-text/more", data={"next": "review"})
    assert run_jobs() == 1  # asked for: written, and it needs review again
    needs = editor_client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert f"/editor/documents/{document_id}/review" in needs


def test_an_unknown_review_queue_is_a_clear_400(editor_client):
    response = editor_client.get("/editor/documents?review=maybe")
    assert response.status_code == 400
    assert "Unknown review queue" in response.get_data(as_text=True)


def test_after_a_decision_the_page_links_the_next_document_needing_review(
    app, editor_client, written
):
    first, second = written("One,", "Two,")
    response = editor_client.post(
        f"/editor/documents/{first}/review", data={"decision": "reject"}, follow_redirects=True
    )
    page = response.get_data(as_text=True)
    assert "You rejected the machine text of revision 1. The document stays as it was." in page
    assert f'href="/editor/documents/{second}/review" data-next-review>Doc 1</a>' in page


def test_the_decision_summary_shows_only_the_editors_own_review_of_that_document(
    app, editor_client, written, make_user
):
    first, second = written("One,", "Two,")
    editor_client.post(f"/editor/documents/{first}/review", data={"decision": "reject"})
    with app.app_context():
        review_id = db.session.scalar(select(Review.id))
    # The review of `first`, named on `second`'s page: not shown.
    page = editor_client.get(f"/editor/documents/{second}/review?decided={review_id}")
    assert "data-decided" not in page.get_data(as_text=True)
    for bad in ("abc", "0", "99999999999999999999"):
        odd = editor_client.get(f"/editor/documents/{first}/review?decided={bad}")
        assert odd.status_code == 200 and "data-decided" not in odd.get_data(as_text=True)


# -- unassigned while reviewing --------------------------------------------------


def test_an_editor_unassigned_while_reviewing_is_told_and_keeps_the_typed_text(
    app, editor_client, sponsor_client, written
):
    [document_id] = written("One,")
    sponsor_client.post(f"/sponsor/documents/{document_id}/editor", data={"editor_id": ""})

    response = editor_client.post(
        f"/editor/documents/{document_id}/review",
        data={"decision": "edit", "text": "My careful <b>edit</b>."},
    )

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "This document is no longer assigned to you" in page
    assert ">My careful &lt;b&gt;edit&lt;/b&gt;.</textarea>" in page
    assert "Doc 0" not in page and "One," not in page  # nothing of the document itself
    assert editor_client.get(f"/editor/documents/{document_id}/review").status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Review)) is None


def test_the_unassigned_answer_is_the_same_for_a_document_that_does_not_exist(editor_client):
    response = editor_client.post("/editor/documents/987654/review", data={"text": "Kept."})
    assert response.status_code == 404
    assert ">Kept.</textarea>" in response.get_data(as_text=True)


# -- what the sponsor sees -------------------------------------------------------


def test_the_sponsor_sees_each_decision_on_the_page_in_the_history_and_in_the_list(
    app, sponsor_client, editor_client, editor, written
):
    first, second = written("One,", "Two,")
    editor_client.post(f"/editor/documents/{first}/review", data={"decision": "reject"})

    page = sponsor_client.get(f"/sponsor/documents/{first}").get_data(as_text=True)
    assert f"<strong>Rejected</strong>\n      by {editor.name}" in page
    assert "the document stayed as it was" in page
    assert f"Rejected by {editor.name}" in page  # the history's latest row

    other = sponsor_client.get(f"/sponsor/documents/{second}").get_data(as_text=True)
    assert "Not reviewed yet." in other

    listed = sponsor_client.get("/sponsor/documents").get_data(as_text=True)
    assert "<th>Review</th>" in listed
    assert listed.count(">Rejected</span>") == 1 and listed.count("Needs review") == 1


def test_an_accepted_text_shows_the_revision_it_became(
    app, sponsor_client, editor_client, editor, written
):
    [document_id] = written("One,")
    editor_client.post(f"/editor/documents/{document_id}/review", data={"decision": "accept"})

    history = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    assert f"Accepted by {editor.name}" in history
    revision_one = sponsor_client.get(f"/documents/{document_id}/revisions/1")
    assert revision_one.status_code == 200


def test_review_counts_follow_the_latest_machine_text(app, editor, sponsor):
    from srcflask.documents import service

    with app.app_context():
        owner = db.session.get(User, sponsor.id)
        assigned = db.session.get(User, editor.id)
        for status in ("done", "done", "queued", "failed"):
            DocumentFactory(owner=owner, editor=assigned, machine_text__status=status)
        counts = service.review_counts(db.session.get(User, editor.id))
        assert counts == {"needs-review": 2, "reviewed": 0}


def test_other_editors_documents_are_not_in_an_editors_queues(app, written, make_user):
    written("One,")
    other = make_user(role=Role.EDITOR)
    client = login_as(app.test_client(), other)
    page = client.get("/editor/documents?review=needs-review").get_data(as_text=True)
    assert 'Needs review <span class="count">0</span>' in page
    assert "Doc 0" not in page


# -- lists that refresh themselves -----------------------------------------------


def test_lists_ask_for_the_state_of_their_rows_and_get_only_readable_ones(
    app, sponsor_client, editor_client, written, make_user, run_jobs
):
    first, second = written("One,", "Two,")
    stranger = login_as(app.test_client(), make_user(role=Role.SPONSOR))

    listed = sponsor_client.get("/sponsor/documents").get_data(as_text=True)
    assert 'data-list-status-url="/documents/machine-text"' in listed
    assert f'data-row-document="{first}" data-row-status="done"' in listed

    editor_client.post(f"/editor/documents/{first}/review", data={"decision": "reject"})
    answer = sponsor_client.get(f"/documents/machine-text?ids={first},{second},987654")
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.json["documents"] == {
        str(first): {
            "status": "done",
            "review": "reviewed",
            "decision": "rejected",
            "origin": "save",
            "has_editor": True,
        },
        str(second): {
            "status": "done",
            "review": "needs-review",
            "decision": None,
            "origin": "save",
            "has_editor": True,
        },
    }
    assert stranger.get(f"/documents/machine-text?ids={first},{second}").json == {"documents": {}}


@pytest.mark.parametrize("ids", ["1,x", "-1", "1;2", ",".join(["1"] * 101), "12345678901"])
def test_list_state_requests_with_bad_ids_get_a_clear_400(sponsor_client, ids):
    response = sponsor_client.get(f"/documents/machine-text?ids={ids}")
    assert response.status_code == 400
    assert "ids must be up to 100 document ids" in response.get_data(as_text=True)


def test_the_saved_note_is_marked_for_the_page_to_update(sponsor_client, production_model):
    saved = sponsor_client.post(
        "/sponsor/documents/new",
        data={"title": "T", "body": "Some text.", "editor_id": ""},
        follow_redirects=True,
    )
    assert '<p class="flash flash-machine-text">Saved. The machine text is being written.</p>' in (
        saved.get_data(as_text=True)
    )


# -- how long until it is ready --------------------------------------------------


def test_waiting_machine_text_shows_an_estimate_from_measured_speed(app, sponsor_client, written):
    from datetime import timedelta

    from srcflask.models import MachineText

    done = written("One,", "Two,", "Three,")
    with app.app_context():
        # The model took 20, 30 and 40 seconds: the median is 30.
        for seconds, machine_text in zip(
            (20, 30, 40), db.session.scalars(select(MachineText)).all(), strict=True
        ):
            machine_text.finished_at = machine_text.started_at + timedelta(seconds=seconds)
        db.session.commit()
    app.config["GENERATION_BATCH_SIZE"] = 2
    queued = [
        doc_id_from(create(sponsor_client, title=f"Q{i}", body="Waiting text,")) for i in range(3)
    ]

    states = [sponsor_client.get(f"/documents/{i}/machine-text").json for i in queued]
    assert [s["status"] for s in states] == ["queued"] * 3
    # Batches of 2: the first two wait one batch (30 s), the third two batches (60 s).
    assert [s["estimate_seconds"] for s in states] == [30, 30, 60]
    page = sponsor_client.get(f"/sponsor/documents/{queued[2]}").get_data(as_text=True)
    assert "Ready in about 60 seconds." in page
    assert sponsor_client.get(f"/documents/{done[0]}/machine-text").json["estimate_seconds"] is None


def test_no_estimate_before_anything_was_measured(sponsor_client, production_model):
    document_id = doc_id_from(create(sponsor_client, title="T", body="Text,"))
    state = sponsor_client.get(f"/documents/{document_id}/machine-text").json
    assert state["status"] == "queued" and state["estimate_seconds"] is None


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (None, "a moment"),
        (3, "about 5 seconds"),
        (42, "about 40 seconds"),
        (89, "about 90 seconds"),
        (200, "about 3 minutes"),
    ],
)
def test_waits_are_said_in_words(seconds, words):
    from srcflask.templating import about_seconds

    assert about_seconds(seconds) == words


# -- export ----------------------------------------------------------------------


def test_a_sponsor_downloads_their_documents_with_machine_text_and_review(
    app, sponsor_client, editor_client, editor, written, make_user
):
    import csv
    import io
    import json

    first, second = written("One,", '=HYPERLINK("http://evil")')
    editor_client.post(f"/editor/documents/{first}/review", data={"decision": "reject"})
    other = login_as(app.test_client(), make_user(role=Role.SPONSOR))
    doc_id_from(create(other, title="Not yours", body="Secret body."))

    response = sponsor_client.get("/sponsor/documents/export.jsonl")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert 'filename="srcflask-documents.jsonl"' in response.headers["Content-Disposition"]
    rows = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]
    assert [row["id"] for row in rows] == [first, second]
    assert rows[0] | {"updated_at": None} == {
        "id": first,
        "title": "Doc 0",
        "body": "One,",
        "editor_email": editor.email,
        "revision": 1,
        "machine_text_status": "done",
        "machine_text": "and it rained all week.",
        "review": "rejected",
        "updated_at": None,
    }
    assert rows[1]["review"] == "needs-review"

    sheet = sponsor_client.get("/sponsor/documents/export.csv")
    assert sheet.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(sheet.get_data(as_text=True))))
    assert [row["title"] for row in table] == ["Doc 0", "Doc 1"]
    # A cell a spreadsheet would run as a formula is written as text.
    assert table[1]["body"] == '\'=HYPERLINK("http://evil")'
    assert "Secret body." not in sheet.get_data(as_text=True)


def test_an_unknown_export_format_is_a_404(sponsor_client):
    assert sponsor_client.get("/sponsor/documents/export.xlsx").status_code == 404


# -- import ----------------------------------------------------------------------


def upload(client, name: str, content: str | bytes):
    import io

    data = content.encode() if isinstance(content, str) else content
    return client.post(
        "/sponsor/documents/import",
        data={"file": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def titles(app) -> list[str]:
    from srcflask.models import Document

    with app.app_context():
        return [d.title for d in db.session.scalars(select(Document).order_by(Document.id))]


def test_a_csv_of_documents_is_imported_and_their_machine_text_queued(
    app, sponsor_client, editor, production_model
):
    from srcflask.models import MachineText, MachineTextStatus

    content = (
        "title,body,editor_email\r\n"
        f'Report,"Sales rose.\r\nCosts fell.",{editor.email.upper()}\r\n'
        "Notes,Present: Ann.,\r\n"
        "Empty body,,\r\n"
    )
    response = upload(sponsor_client, "docs.csv", content)

    assert response.status_code == 303
    page = sponsor_client.get(response.location).get_data(as_text=True)
    assert "Imported 3 documents. Their machine text is queued." in page
    assert titles(app) == ["Report", "Notes", "Empty body"]
    with app.app_context():
        from srcflask.models import Document

        report = db.session.scalar(select(Document).where(Document.title == "Report"))
        assert report.body == "Sales rose.\nCosts fell." and report.editor_id == editor.id
        statuses = db.session.scalars(select(MachineText.status)).all()
        assert statuses == [MachineTextStatus.QUEUED] * 2  # the empty body has nothing to continue


def test_a_file_with_any_bad_row_imports_nothing_and_names_every_problem(
    app, sponsor_client, make_user
):
    pending_editor = make_user(role=Role.EDITOR, status=UserStatus.PENDING)
    content = "\n".join(
        [
            '{"title": "Fine", "body": "Good text."}',
            '{"title": "", "body": "No title"}',
            "not json",
            '{"title": "T", "body": "b", "colour": "red"}',
            f'{{"title": "T", "editor_email": "{pending_editor.email}"}}',
            '{"title": "<b>x</b>", "body": ' + '"' + "y" * 20_001 + '"}',
            '{"title": 5}',
        ]
    )
    response = upload(sponsor_client, "docs.jsonl", content)

    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Nothing was imported" in page
    for line, problem in [
        (2, "The title is missing."),
        (3, "This line is not a JSON object."),
        (4, "Unknown field(s): colour."),
        (5, f"No approved editor has the email {pending_editor.email}."),
        (6, "The body is 20,001 characters; the most is 20,000."),
        (7, "title must be text."),
    ]:
        assert f"<tr><td>{line}</td><td>{problem}</td></tr>" in page
    assert titles(app) == []


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("docs.txt", "title\nA", "Choose a file ending in .csv or .jsonl."),
        ("docs.csv", "name,body\nA,b", "The first line must name the columns"),
        ("docs.csv", "title\n", "The file has no documents in it."),
        ("docs.csv", b"title\n\xff\xfe", "The file is not UTF-8 text."),
        ("docs.csv", "title\nA\x00", "The file contains NUL characters."),
        ("docs.csv", "title,body\nA,b,extra", "This row has more cells than the header"),
        ("docs.csv", "title\n" + "T\n" * 501, "import at most 500 at a time"),
    ],
)
def test_bad_files_are_refused_with_a_clear_reason(app, sponsor_client, name, content, problem):
    response = upload(sponsor_client, name, content)
    assert response.status_code == 422
    assert problem in response.get_data(as_text=True)
    assert titles(app) == []


def test_an_import_without_a_file_asks_for_one(sponsor_client):
    response = sponsor_client.post("/sponsor/documents/import", data={})
    assert response.status_code == 422
    assert "Choose a .csv or .jsonl file." in response.get_data(as_text=True)


def test_imported_machine_text_past_the_share_of_the_queue_waits(
    app, sponsor_client, production_model
):
    from srcflask.models import MachineText

    app.config["JOB_MAX_QUEUED_PER_USER"] = 2
    response = upload(sponsor_client, "docs.csv", "title,body\n" + "T,Some text.\n" * 4)
    page = sponsor_client.get(response.location).get_data(as_text=True)
    assert "Imported 4 documents. Their machine text is queued; 2 wait until" in page
    with app.app_context():
        statuses = sorted(s.value for s in db.session.scalars(select(MachineText.status)))
    assert statuses == ["queued", "queued", "waiting", "waiting"]


# -- documents nobody can review -------------------------------------------------


def test_a_new_document_offers_the_sponsors_last_editor(sponsor_client, editor):
    form = sponsor_client.get("/sponsor/documents/new").get_data(as_text=True)
    assert '<option selected value="">Nobody yet</option>' in form  # no editor used yet

    create(sponsor_client, title="First", editor_id=str(editor.id))
    form = sponsor_client.get("/sponsor/documents/new").get_data(as_text=True)
    assert f'<option selected value="{editor.id}">' in form


def test_lists_say_when_nobody_can_review_and_admins_can_find_those_documents(
    sponsor_client, admin_client, editor, production_model, run_jobs
):
    lonely = doc_id_from(create(sponsor_client, title="Nobody reviews me"))
    cared_for = doc_id_from(create(sponsor_client, title="Reviewed", editor_id=str(editor.id)))
    run_jobs()

    mine = sponsor_client.get("/sponsor/documents").get_data(as_text=True)
    row = mine[mine.index(f'data-row-document="{lonely}"') :]
    row = row[: row.index("</tr>")]
    assert "No editor yet — assign one" in row
    assert f'href="/sponsor/documents/{lonely}#editor"' in row
    assert "Needs review" not in row

    unassigned = admin_client.get("/admin/documents?editor=none").get_data(as_text=True)
    assert "Nobody reviews me" in unassigned and ">Reviewed<" not in unassigned
    assert f'data-row-document="{cared_for}"' not in unassigned
    everyone = admin_client.get("/admin/documents").get_data(as_text=True)
    assert f'data-row-document="{cared_for}"' in everyone
    bad = admin_client.get("/admin/documents?editor=someone")
    assert bad.status_code == 400 and "use editor=none" in bad.get_data(as_text=True)

    states = sponsor_client.get(f"/documents/machine-text?ids={lonely},{cared_for}").json
    assert states["documents"][str(lonely)]["has_editor"] is False
    assert states["documents"][str(cared_for)]["has_editor"] is True


def test_the_history_says_which_text_nobody_reviewed_because_the_document_changed(
    sponsor_client, written, run_jobs
):
    [document_id] = written("It was cold.")
    sponsor_client.post(
        f"/sponsor/documents/{document_id}/edit",
        data={"title": "Doc 0", "body": "It was cold. Then it snowed.", "editor_id": ""},
    )
    run_jobs()

    page = sponsor_client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
    history = page[page.index('class="table history"') :]
    assert history.count("Not reviewed: the document changed") == 1  # revision 1, not 2


def test_an_editor_starts_on_the_documents_that_need_review(editor_client):
    response = editor_client.get("/editor/")
    assert response.status_code == 302
    assert response.location == "/editor/documents?review=needs-review"
    page = editor_client.get(response.location).get_data(as_text=True)
    assert 'aria-current="page">Needs review' in page


@pytest.mark.parametrize(
    ("who", "url"),
    [
        ("sponsor", "/sponsor/documents"),
        ("editor", "/editor/documents"),
        ("admin", "/admin/documents"),
    ],
)
def test_every_document_list_searches_titles_and_text(
    sponsor_client, editor_client, admin_client, editor, who, url
):
    for title, body in [
        ("Water butts", "Ellis will order four."),
        ("Compost", "The pallets rotted; 100% of the bay is full."),
        ("Minutes", "Nothing about water here."),
    ]:
        create(sponsor_client, title=title, body=body, editor_id=str(editor.id))
    client = {"sponsor": sponsor_client, "editor": editor_client, "admin": admin_client}[who]

    found = client.get(f"{url}?q=WATER").get_data(as_text=True)
    assert "Water butts" in found and "Minutes" in found  # title or text, any case
    assert "Compost" not in found
    assert 'value="WATER"' in found
    literal = client.get(f"{url}?q=100%25").get_data(as_text=True)  # % is a character
    assert "Compost" in literal and "Water butts" not in literal
    nothing = client.get(f"{url}?q=%25_%25").get_data(as_text=True)
    assert "Water butts" not in nothing and "“%_%”" in nothing
    long = client.get(f"{url}?q=" + "x" * 5000)
    assert long.status_code == 200


def test_every_page_links_the_api_documentation(client, sponsor_client, editor_client):
    for who, url in [
        (client, "/auth/login"),
        (sponsor_client, "/sponsor/documents"),
        (editor_client, "/editor/documents"),
    ]:
        page = who.get(url).get_data(as_text=True)
        assert '<a href="/api/v1/docs" data-api-docs>JSON API</a>' in page
    assert client.get("/api/v1/docs").status_code == 200  # public
