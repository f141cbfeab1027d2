"""Learning from reviews in a real browser: reviews -> fine-tuning -> comparison -> production.

The app runs as `flask run` with the in-process runner (generation and training
threads) and a tiny trainable model as production, so the whole loop takes
seconds; the reviews it learns from are written to the database directly (the
review loop itself is walked in test_browser.py). Screenshots go to
tests/artifacts/browser/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .test_browser import SHOTS, Person, running_server, tiny_model_instance
from .tinymodels import SENTENCES

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "a long admin passphrase"
FINAL = " We will meet again next spring, when the garden opens."


def seed_reviews(database_url: str, instance: Path, count: int) -> None:
    """`count` documents whose machine text the tiny model wrote and an editor edited."""
    from srcflask import create_app
    from srcflask.extensions import db
    from srcflask.models import Decision, Review, Role
    from srcflask.registry import service as registry

    from .factories import DocumentFactory, UserFactory

    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url}, env_name="testing", instance_path=str(instance)
    )
    with app.app_context():
        version = registry.production_version()
        editor = UserFactory(role=Role.EDITOR, name="Erin Editor")
        for i in range(count):
            document = DocumentFactory(
                title=f"Garden note {i}",
                body=SENTENCES[i % len(SENTENCES)],
                editor=editor,
                machine_text__text=" and the rest is noise.",
                machine_text__model_version=version,
            )
            decision = Decision.EDITED if i % 3 else Decision.ACCEPTED
            db.session.add(
                Review(
                    machine_text=document.revisions[0].machine_text,
                    editor=editor,
                    decision=decision,
                    text=FINAL if decision is Decision.EDITED else None,
                    edit_distance=0.8 if decision is Decision.EDITED else 0.0,
                )
            )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance, env = tiny_model_instance(
        tmp_path_factory,
        "learning",
        model_name="tiny-garden",
        init_std=0.3,
        commands=(["create-admin", "--email", ADMIN_EMAIL, "--name", "Root Admin"],),
        SRCFLASK_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    seed_reviews(env["DATABASE_URL"], instance, 30)
    yield from running_server(env)


def test_an_admin_goes_from_reviews_to_a_new_production_version(server, browser, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("learning-*"):  # this test's own, from an earlier run
        old.unlink()
    admin = Person(browser, server, "admin")
    page = admin.page
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)

    # The Models page: how the production version fares in review, with its chart.
    admin.go("/admin/models")
    metrics = page.locator("[data-metrics='tiny-garden:1']")
    assert "30 written, 30 reviewed" in metrics.inner_text()
    assert "10 accepted (33%)" in metrics.inner_text()
    assert page.locator("[data-metrics='tiny-garden:1'] svg.chart rect").count() >= 2
    admin.shot("learning-01-models-metrics")

    # The reviewed pairs, counted and downloaded.
    admin.go("/admin/reviews")
    page.click("button:has-text('Count')")
    assert page.locator("[data-matching]").get_attribute("data-matching") == "30"
    admin.shot("learning-02-reviews")
    with page.expect_download() as waiting:
        page.click("button:has-text('Download JSONL')")
    saved = tmp_path / "reviews.jsonl"
    waiting.value.save_as(saved)
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert len(rows) == 30 and {r["decision"] for r in rows} == {"accepted", "edited"}

    # Fine-tuning: the form, then the run followed live to its end.
    admin.go("/admin/training")
    assert page.locator("[data-usable]").get_attribute("data-usable") == "30"
    page.fill("#name", "tiny-garden")
    page.fill("#epochs", "4")
    page.fill("#learning_rate", "0.01")
    admin.shot("learning-03-training-form")
    page.click("button:has-text('Start training')")
    page.wait_for_selector("[data-status]")
    admin.shot("learning-04-training-run")
    page.wait_for_selector("#comparison", timeout=120_000)  # the page reloads when it ends
    assert page.locator("[data-status]").inner_text() == "done"
    parent_bits = float(page.locator("[data-compare='parent'] td").nth(1).inner_text())
    tuned_bits = float(page.locator("[data-compare='version'] td").nth(1).inner_text())
    assert tuned_bits < parent_bits
    # The first held-out document: the editor's text beside what each version wrote.
    texts = page.locator("#comparison details[open] .machine-text")
    assert texts.count() == 3
    assert texts.nth(0).inner_text().strip() in (FINAL.strip(), "and the rest is noise.")
    admin.shot("learning-05-comparison")

    # Promotion, then a one-click roll back.
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("button:has-text('Make tiny-garden:2 production')")
    page.wait_for_url("**/admin/models")
    assert "production now points at tiny-garden:2" in page.inner_text("body")
    assert "Fine-tuned from tiny-garden:1" in page.inner_text("[data-lineage='tiny-garden:2']")
    admin.shot("learning-06-promoted")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-rollback='tiny-garden:1']")
    page.wait_for_url("**/admin/models")
    assert "production is back on tiny-garden:1" in page.inner_text("body")
    admin.shot("learning-07-rolled-back")
    admin.go("/admin/audit")
    audit = page.inner_text("body")
    assert "rolled the production alias back to tiny-garden:1" in audit
    assert "started fine-tuning tiny-garden:1 into tiny-garden" in audit
    assert not admin.problems, admin.problems
