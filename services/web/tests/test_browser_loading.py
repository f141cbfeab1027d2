"""While the model loads, the document page says so, with an estimate, and then moves on.

The app runs as `flask run` with no runner of its own (JOBS_MODE=manual), so the
machine text stays queued; this test process plays the worker loading the
model: it records the load in the database, as a starting runner does
(registry.loads), and then finishes it. Screenshots at 1280 and 390 px go to
tests/artifacts/browser/.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from .factories import DEFAULT_PASSWORD
from .test_browser import SHOTS, Person, running_server, tiny_model_instance

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SPONSOR_EMAIL = "sam@example.org"


def app_for(database_url: str, instance: Path):
    from srcflask import create_app

    return create_app(
        {"SQLALCHEMY_DATABASE_URI": database_url, "JOBS_MODE": "manual"},
        env_name="testing",
        instance_path=str(instance),
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    instance, env = tiny_model_instance(
        tmp_path_factory, "loading", model_name="tiny-hall", init_std=0.3, JOBS_MODE="manual"
    )
    app = app_for(env["DATABASE_URL"], instance)
    for base in running_server(env):
        yield base, app


def test_the_page_says_the_model_is_loading_until_it_is_loaded(server, browser):
    from srcflask.documents import service
    from srcflask.extensions import db
    from srcflask.models import Role
    from srcflask.models.mlmodels import ModelLoad
    from srcflask.models.types import utcnow
    from srcflask.registry import service as registry

    from .factories import UserFactory

    base, app = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with app.app_context():
        sponsor = UserFactory(role=Role.SPONSOR, name="Sam Sponsor", email=SPONSOR_EMAIL)
        document_id = service.create_document(
            sponsor, "Hall committee", "The roof leaks over the stage, and", None
        ).id
        version = registry.production_version()
        # This process is loading the production model, as a runner does when it starts;
        # its last load took 40 s.
        done = ModelLoad(version_id=version.id, worker="elsewhere:1:x", seconds=40.0)
        done.finished_at = utcnow()
        load = ModelLoad(
            version_id=version.id,
            worker=f"{socket.gethostname()}:{os.getpid()}:test",
            started_at=utcnow(),
        )
        db.session.add_all([done, load])
        db.session.commit()
        load_id = load.id

    sponsor = Person(browser, base, "sponsor")
    page = sponsor.page
    sponsor.login(SPONSOR_EMAIL, DEFAULT_PASSWORD)
    sponsor.go(f"/sponsor/documents/{document_id}")
    note = page.locator("[data-machine-text] [data-field=loading]")
    assert note.is_visible()
    assert "Loading the model" in note.inner_text()
    assert "seconds left" in note.inner_text()
    badge = page.locator("[data-machine-text] [data-field=status]")
    assert badge.inner_text() == "Loading the model"
    sponsor.shot("loading-01-model-loading")

    # The load ends: the page, polling, says the text is queued for the model now.
    with app.app_context():
        row = db.session.get(ModelLoad, load_id)
        row.finished_at, row.seconds = utcnow(), 12.0
        db.session.commit()
    note.wait_for(state="hidden", timeout=30_000)
    assert badge.inner_text() == "Queued"
    sponsor.shot("loading-02-model-loaded")
    assert sponsor.problems == []
