"""Keeping part of a machine text, the share of words kept, and the marks an editor checks."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from srcflask.documents.diff import kept_word_share
from srcflask.documents.marks import sentence_ends
from srcflask.extensions import db
from srcflask.models import ApiToken, Decision, Review, User

from .test_api import bearer
from .test_documents import create, doc_id_from, revisions

MACHINE = (
    "The garden centre will deliver the water butts on Friday. Ellis will fit them. "
    "Call 206-222-2200 for the key."
)
FIRST_END = MACHINE.index("Friday.") + len("Friday.")


@pytest.fixture
def written(app, sponsor_client, editor, production_model, run_jobs, model_script):
    """Write documents assigned to `editor`, whose machine text is `text`; return their ids."""

    def write(*bodies: str, text: str) -> list[int]:
        model_script.text = text
        ids = [
            doc_id_from(create(sponsor_client, title=f"Doc {i}", body=b, editor_id=str(editor.id)))
            for i, b in enumerate(bodies)
        ]
        run_jobs()
        return ids

    return write


@pytest.fixture
def editor_token(app, editor) -> str:
    with app.app_context():
        token, secret = ApiToken.issue(db.session.get(User, editor.id), "review", 30)
        db.session.add(token)
        db.session.commit()
    return secret


def review_page(client, document_id):
    return client.get(f"/editor/documents/{document_id}/review").get_data(as_text=True)


def keep(client, document_id, until):
    return client.post(
        f"/editor/documents/{document_id}/review",
        data={"decision": "keep", "keep_until": str(until)},
    )


def test_sentence_ends_are_where_an_editor_may_cut():
    ends = sentence_ends(MACHINE)
    assert [MACHINE[:end][-7:] for end in ends] == ["Friday.", "t them.", "he key."]
    assert sentence_ends("") == [] and sentence_ends("No end") == [6]


@pytest.mark.parametrize(
    ("machine", "final", "share"),
    [
        ("one two three four", "one two three four", 1.0),
        ("one two three four", None, 0.0),
        ("one two three four", "one two", 0.5),
        ("one two three four", "Intro. one two three four and more", 1.0),
        ("one two three four", "four three two one", 0.25),
        ("", "anything", None),
    ],
)
def test_the_share_of_words_kept_counts_machine_words_surviving_in_order(machine, final, share):
    assert kept_word_share(machine, final) == share


def test_keeping_part_adds_the_text_up_to_that_sentence(app, editor_client, written):
    [document_id] = written("It was cold.", text=MACHINE)

    response = keep(editor_client, document_id, FIRST_END)

    assert response.status_code == 303
    _, second = revisions(app, document_id)
    assert second.body == (
        "It was cold.\n\nThe garden centre will deliver the water butts on Friday."
    )
    assert second.origin.value == "kept_part"
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert review.decision is Decision.KEPT_PART
        assert review.kept_share == pytest.approx(10 / 19)
        assert review.text == "The garden centre will deliver the water butts on Friday."
    page = editor_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Kept in part" in page


@pytest.mark.parametrize("until", ["", "5", str(len(MACHINE)), "-1", "x", "99999999999"])
def test_keeping_up_to_anything_but_a_sentence_end_is_refused_and_changes_nothing(
    app, editor_client, written, until
):
    [document_id] = written("It was cold.", text=MACHINE)

    response = keep(editor_client, document_id, until)

    assert response.status_code == 409
    assert "Choose a sentence of the machine text" in response.get_data(as_text=True)
    assert len(revisions(app, document_id)) == 1


def test_the_review_page_offers_a_keep_button_per_sentence_and_marks_what_to_check(
    editor_client, written
):
    [document_id] = written(
        "The board met on 14 March at the hall.", text=MACHINE + " <b>Bye</b> on 14 March."
    )
    page = review_page(editor_client, document_id)

    assert page.count("data-keep=") == 3  # every sentence but the last: that is Accept
    assert f'name="keep_until" value="{FIRST_END}"' in page
    assert '<mark class="check check-date"' in page and ">Friday</mark>" in page
    assert ">206-222-2200</mark>" in page and "check-phone" in page
    assert ">14</mark>" not in page  # the document says 14 March
    assert "&lt;b&gt;Bye&lt;/b&gt;" in page and "<b>Bye</b>" not in page  # escaped
    assert "data-legend" in page and "<kbd>A</kbd>" in page and "<kbd>1</kbd>" in page


def test_each_sentence_on_the_page_starts_at_its_first_word(editor_client, written):
    # What the model wrote for minutes, through the product: items after blank lines.
    text = "7. Board meeting adjourned at 8 pm.\n\n8. Meeting adjourned at 9 pm."
    [document_id] = written("6. Board meeting.", text=text)
    page = review_page(editor_client, document_id)

    spans = re.findall(r'<span class="sentence-text">(.*?)</span>', page, re.S)
    assert [re.sub(r"<[^>]+>", "", span) for span in spans] == [
        "7. Board meeting adjourned at 8 pm.",
        "8. Meeting adjourned at 9 pm.",
    ]


def test_the_api_gives_marks_and_sentence_ends_and_takes_a_kept_part(
    app, client, written, editor_token
):
    [document_id] = written("It was cold.", text=MACHINE)
    headers = bearer(editor_token)
    document = client.get(f"/api/v1/documents/{document_id}", headers=headers).get_json()
    machine = document["machine_text"]

    assert machine["sentence_ends"] == sentence_ends(MACHINE)
    kinds = {(m["kind"], m["text"]) for m in machine["check_marks"]}
    assert ("phone", "206-222-2200") in kinds and ("date", "Friday") in kinds
    mark = machine["check_marks"][0]
    assert MACHINE[mark["start"] : mark["end"]] == mark["text"]

    url = f"/api/v1/machine-texts/{machine['id']}/review"
    missing = client.post(url, json={"decision": "keep"}, headers=headers)
    assert missing.status_code == 422 and "keep_until" in missing.get_data(as_text=True)
    wrong = client.post(url, json={"decision": "keep", "keep_until": 3}, headers=headers)
    assert wrong.status_code == 409
    done = client.post(url, json={"decision": "keep", "keep_until": FIRST_END}, headers=headers)
    assert done.status_code == 201
    body = done.get_json()
    assert body["decision"] == "kept_part" and body["kept_share"] == pytest.approx(10 / 19)


def test_metrics_and_export_count_kept_parts_and_the_words_kept(
    app, admin_client, editor_client, written, production_model
):
    first, second, third = written("One.", "Two.", "Three.", text=MACHINE)
    keep(editor_client, first, FIRST_END)
    editor_client.post(f"/editor/documents/{second}/review", data={"decision": "accept"})
    editor_client.post(f"/editor/documents/{third}/review", data={"decision": "reject"})

    page = admin_client.get("/admin/models").get_data(as_text=True)
    assert "1 kept in part (33%)" in page
    assert "53%" in page  # the median of 100%, 53% and 0% of the words kept

    export = admin_client.get("/admin/reviews/export.jsonl").get_data(as_text=True)
    assert '"decision": "kept_part"' in export and '"kept_share": 0.5263' in export
    assert '"final_text": "The garden centre will deliver the water butts on Friday."' in export


def give_alternatives(app, document_id, *texts):
    with app.app_context():
        from srcflask.models import Document

        document = db.session.get(Document, document_id)
        document.revisions[-1].machine_text.alternatives = list(texts)
        db.session.commit()


ALTERNATIVE = "Ellis collected the water butts himself and fitted them along the east fence."


def test_an_editor_chooses_among_clearly_different_texts_and_the_choice_is_kept(
    app, admin_client, editor_client, written
):
    first, second = written("It was cold.", "It was warm.", text=MACHINE)
    give_alternatives(app, first, ALTERNATIVE)
    give_alternatives(app, second, ALTERNATIVE)

    page = review_page(editor_client, first)
    assert page.count("data-choice=") == 2 and "Choose this text" in page
    chosen = editor_client.get(f"/editor/documents/{first}/review?choice=1").get_data(as_text=True)
    assert f">{ALTERNATIVE}</textarea>" in chosen and 'name="chosen" value="1"' in chosen
    outside = editor_client.get(f"/editor/documents/{first}/review?choice=7").get_data(as_text=True)
    assert f">{MACHINE}</textarea>" in outside  # an unknown choice shows the first

    editor_client.post(
        f"/editor/documents/{first}/review", data={"decision": "accept", "chosen": "1"}
    )
    editor_client.post(
        f"/editor/documents/{second}/review", data={"decision": "accept", "chosen": "0"}
    )
    refused = editor_client.post(
        f"/editor/documents/{second}/review", data={"decision": "accept", "chosen": "5"}
    )
    assert refused.status_code == 409

    assert revisions(app, first)[-1].body == f"It was cold.\n\n{ALTERNATIVE}"
    with app.app_context():
        reviews = db.session.scalars(select(Review).order_by(Review.id)).all()
        assert [(r.chosen, r.kept_share) for r in reviews] == [(1, 1.0), (0, 1.0)]
    export = admin_client.get("/admin/reviews/export.jsonl").get_data(as_text=True)
    assert f'"final_text": "{ALTERNATIVE}"' in export and '"chosen": 1' in export
    models = admin_client.get("/admin/models").get_data(as_text=True)
    assert "1 of 2 (50%)" in models


def test_a_keep_button_sends_the_review_form_and_keeps_the_text_the_editor_saw(
    app, editor_client, written
):
    [document_id] = written("It was cold.", text=MACHINE)
    page = review_page(editor_client, document_id)
    assert 'form="review-form" name="keep_until"' in page and 'id="review-form"' in page

    # What the browser sends: the review form's fields and the pressed button's value.
    response = editor_client.post(
        f"/editor/documents/{document_id}/review",
        data={"text": MACHINE + "\r\n", "chosen": "0", "keep_until": str(FIRST_END)},
    )

    assert response.status_code == 303
    with app.app_context():
        review = db.session.scalar(select(Review))
        assert review.decision is Decision.KEPT_PART
        assert review.text == MACHINE[:FIRST_END]


def test_keeping_part_after_changing_the_box_is_refused_and_the_typed_text_kept(
    app, editor_client, written
):
    [document_id] = written("It was cold.", text=MACHINE)
    typed = "The garden centre will deliver on Saturday instead."

    response = editor_client.post(
        f"/editor/documents/{document_id}/review",
        data={"text": typed, "chosen": "0", "keep_until": str(FIRST_END)},
    )

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "You changed the text in the edit box" in page
    assert f">{typed}</textarea>" in page  # nothing typed is lost
    assert len(revisions(app, document_id)) == 1
