"""A second chance in a real browser: undo a decision, and another text after a rejection.

The app runs as `flask run` with the in-process runner and a tiny model as
production, so each machine text takes a moment; the accounts and the document
are written to the database directly (signing up is walked in test_browser.py).
Screenshots at 1280 and 390 px go to tests/artifacts/browser/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .factories import DEFAULT_PASSWORD
from .test_browser import SHOTS, Person, running_server, tiny_model_instance

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPONSOR_EMAIL, EDITOR_EMAIL = "sam@example.org", "erin@example.org"
BODY = "The hall committee met on Tuesday. The roof leaks over the stage, and"


def seed(database_url: str, instance: Path) -> int:
    """An approved sponsor and editor, and a saved document assigned to the editor."""
    from srcflask import create_app
    from srcflask.documents import service
    from srcflask.extensions import db
    from srcflask.models import Role

    from .factories import UserFactory

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "JOBS_MODE": "manual"},
        env_name="testing",
        instance_path=str(instance),
    )
    with app.app_context():
        sponsor = UserFactory(role=Role.SPONSOR, name="Sam Sponsor", email=SPONSOR_EMAIL)
        editor = UserFactory(role=Role.EDITOR, name="Erin Editor", email=EDITOR_EMAIL)
        document = service.create_document(sponsor, "Hall committee", BODY, editor.id)
        document_id = document.id
        db.session.remove()
        db.engine.dispose()
    return document_id


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance, env = tiny_model_instance(
        tmp_path_factory, "second-chance", model_name="tiny-hall", init_std=0.3
    )
    document_id = seed(env["DATABASE_URL"], instance)
    for base in running_server(env):
        yield base, document_id


def test_an_editor_undoes_a_decision_and_asks_for_another_text(server, browser):
    base, document_id = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("second-chance-*"):  # this test's own, from an earlier run
        old.unlink()
    editor = Person(browser, base, "editor")
    sponsor = Person(browser, base, "sponsor")
    page = editor.page
    editor.login(EDITOR_EMAIL, DEFAULT_PASSWORD)
    review = f"/editor/documents/{document_id}/review"

    # The first machine text arrives on the review page by itself.
    editor.go(review)
    page.wait_for_selector("[data-machine-text][data-status='done']", timeout=60_000)
    first = page.input_value("[data-review-text]")
    assert first.strip()

    # Reject it: the summary offers Undo, and the panel Write another.
    page.click("button[name=decision][value=reject]")
    page.wait_for_selector("[data-decided]")
    assert "Rejected" in page.locator("[data-decided] h2").inner_text()
    assert page.locator("[data-decided] [data-undo]").is_visible()
    assert page.locator("[data-write-another]").is_visible()
    editor.shot("second-chance-01-rejected")

    # Undo: the same text is back in the edit box, to decide on again.
    page.click("[data-decided] [data-undo]")
    page.wait_for_selector("text=Your decision is undone")
    assert page.input_value("[data-review-text]") == first
    assert page.locator("[data-undo]").count() == 0
    editor.shot("second-chance-02-undone")

    # Reject again, and ask for another text: it is written for the same revision.
    page.click("button[name=decision][value=reject]")
    page.wait_for_selector("[data-decided]")
    page.click("[data-write-another]")
    page.wait_for_selector("text=The model is writing another text")
    page.wait_for_selector("[data-machine-text][data-status='done']", timeout=60_000)
    page.reload()
    assert "revision 1, text 2" in page.locator("[data-machine-text] h2").inner_text()
    assert page.locator("button[name=decision][value=accept]").is_enabled()
    editor.shot("second-chance-03-another-text")

    # Accept it, then undo that too: the document gets its text back.
    second = page.input_value("[data-review-text]")
    page.click("button[name=decision][value=accept]")
    page.wait_for_selector("[data-decided] [data-added]")
    assert "revision 2 is removed" in page.locator("[data-decided] [data-undo-form]").inner_text()
    editor.shot("second-chance-04-accepted")
    page.click("[data-decided] [data-undo]")
    page.wait_for_selector("text=Your decision is undone")
    assert page.input_value("[data-review-text]") == second

    # The sponsor's history keeps the rejected first text, and the revision page shows both.
    sponsor.login(SPONSOR_EMAIL, DEFAULT_PASSWORD)
    sponsor.go(f"/sponsor/documents/{document_id}")
    replaced = sponsor.page.locator("[data-replaced]")
    assert "Text 1: rejected by Erin Editor" in replaced.inner_text()
    assert sponsor.page.locator(".history tbody tr").count() == 1
    sponsor.shot("second-chance-05-history")
    sponsor.go(f"/documents/{document_id}/revisions/1")
    assert sponsor.page.locator("[data-replaced-text]").count() == 1
    assert (
        "another was written in its place"
        in sponsor.page.locator("[data-replaced-text]").inner_text()
    )
    sponsor.shot("second-chance-06-revision")

    assert editor.problems == [] and sponsor.problems == []
