"""Blind review: while an experiment runs, nothing a sponsor or an editor can reach says
which version or arm wrote a machine text.

Every GET route of the access matrix (tests/test_access.py) that the visitor may
read is requested, page, JSON and API alike, and its whole body searched; a route
added to the app without a matrix row fails the matrix first, so none is missed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from srcflask.documents import service as documents
from srcflask.experiments import service as experiments
from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.models import (
    ApiToken,
    Decision,
    Document,
    Experiment,
    GenerationJob,
    MachineText,
    ModelTask,
    ModelTaskKind,
    Role,
    TrainingRun,
    User,
    UserStatus,
)
from srcflask.registry import service as registry

from .conftest import plant_session
from .test_access import MATRIX

# The registry's list of versions says what versions exist and which is production, to
# anyone approved; it says nothing about who wrote a text, so it is not searched for labels.
LISTS_VERSIONS = {"/api/v1/models"}
# The same bytes for everyone, about no text: the API's documentation (which describes the
# experiments endpoints by name) and the stylesheet (which colours the admins' chart).
SAME_FOR_EVERYONE = {"/api/v1/openapi.json", "/api/v1/docs", "/static/<path:filename>"}
ARM_WORDS = ("champion", "challenger")


@pytest.fixture
def experiment_under_way(app, make_user, production_model, tiny_models):
    """A running experiment with texts of both arms on documents of `owner`, assigned to
    `editor`: some waiting for review, one accepted, one rejected and written again."""
    owner = make_user(role=Role.SPONSOR)
    editor = make_user(role=Role.EDITOR)
    pending = make_user(role=Role.SPONSOR, status=UserStatus.PENDING)
    admin = make_user(role=Role.ADMIN)
    with app.app_context():
        challenger = registry.import_model(
            str(tiny_models["llama-other"]), "tiny-rival", actor=None
        ).version
        experiment = experiments.start(challenger, "greedy", actor=None, confirmed=True)
        person = db.session.get(User, owner.id)
        ids = [
            documents.create_document(
                person, f"Minutes {i}", f"The pier is late {i}.", editor.id
            ).id
            for i in range(8)
        ]
        work.run_pending()
        texts = db.session.scalars(select(MachineText).order_by(MachineText.id)).all()
        assert {t.arm for t in texts} == {"champion", "challenger"}
        assert all(t.status.value == "done" for t in texts)
        reviewer = db.session.get(User, editor.id)
        by_arm = {t.arm: t.revision.document for t in texts}
        accepted = by_arm["champion"]
        rejected = by_arm["challenger"]
        documents.review_machine_text(accepted, reviewer, Decision.ACCEPTED)
        review = documents.review_machine_text(rejected, reviewer, Decision.REJECTED)
        documents.write_more(rejected, reviewer)
        work.run_pending()
        shown = next(d for d in ids if d not in (accepted.id, rejected.id))
        job = GenerationJob(user=person, prompt="Hello", settings={})
        run = TrainingRun(parent=challenger, name="tuned", created_by_label="command line")
        task = ModelTask(
            kind=ModelTaskKind.SPEED, version=challenger, created_by_label="command line"
        )
        tokens = {}
        for account in (owner, editor):
            token, secret = ApiToken.issue(db.session.get(User, account.id), "t", 30)
            tokens[account.id] = (token, secret)
            db.session.add(token)
        db.session.add_all([job, run, task])
        db.session.commit()
        values = {
            "target": pending.id,
            "version": challenger.id,
            "version_number": challenger.version,
            "doc": shown,
            "mt": documents.latest_revision(db.session.get(Document, shown)).machine_text.id,
            "job": job.id,
            "token": tokens[owner.id][0].id,
            "run": run.id,
            "task": task.id,
            "decided_doc": rejected.id,
            "review": review.id,
            "experiment": experiment.id,
        }
        labels = [production_model, challenger.label, "tiny-rival", "tiny-chat"]
        return {
            "values": values,
            "visitors": {"sponsor": owner.id, "editor": editor.id, "admin": admin.id},
            "secrets": {"sponsor": tokens[owner.id][1], "editor": tokens[editor.id][1]},
            "labels": labels,
            "experiment_id": experiment.id,
            "documents": [accepted.id, rejected.id, shown],
        }


def readable_routes(visitor: str) -> list[tuple[str, str]]:
    return sorted(
        rule for rule, row in MATRIX.items() if rule[0] == "GET" and row.answers.get(visitor) == 200
    )


def fetch(app, setup, visitor: str, rule: str):
    row = MATRIX[("GET", rule)]
    client = app.test_client()
    headers = {}
    if rule.startswith("/api/"):
        headers["Authorization"] = f"Bearer {setup['secrets'][visitor]}"
    else:
        plant_session(app, client, setup["visitors"][visitor])
    return client.get(row.url.format(**setup["values"]), headers=headers)


def leaks(body: str, rule: str, labels: list[str]) -> list[str]:
    found = []
    if rule not in LISTS_VERSIONS:
        found += [label for label in labels if label in body]
    if rule not in SAME_FOR_EVERYONE:
        lowered = body.lower()
        found += [word for word in ARM_WORDS if word in lowered]
    return found


@pytest.mark.parametrize("visitor", ["sponsor", "editor"])
def test_nothing_a_sponsor_or_editor_reads_says_who_wrote_a_text(
    app, experiment_under_way, visitor
):
    setup = experiment_under_way
    routes = readable_routes(visitor)
    assert len(routes) >= 15, routes  # the pages, JSON and API of documents at least
    read = {}
    for _, rule in routes:
        response = fetch(app, setup, visitor, rule)
        assert response.status_code == 200, (rule, response.status_code)
        body = response.get_data(as_text=True)
        read[rule] = body
        assert not leaks(body, rule, setup["labels"]), (rule, leaks(body, rule, setup["labels"]))
    # The texts were really there to be seen: done, and their status says blind.
    status = read["/documents/<int:document_id>/machine-text"]
    assert '"status":"done"' in status.replace(" ", "") and '"blind":true' in status.replace(
        " ", ""
    )


def test_admins_see_who_wrote_each_text_and_everyone_does_once_it_ends(app, experiment_under_way):
    """The check above can fail: the same reads show the labels when nothing is hidden."""
    setup = experiment_under_way
    document = setup["values"]["doc"]
    rule = "/documents/<int:document_id>/machine-text"

    admin = app.test_client()
    plant_session(app, admin, setup["visitors"]["admin"])
    answer = admin.get(f"/documents/{document}/machine-text").json
    assert answer["blind"] is False and answer["model_version"] in setup["labels"]

    with app.app_context():
        experiments.stop(
            db.session.get(Experiment, setup["experiment_id"]), actor=None, confirmed=True
        )
    for visitor in ("sponsor", "editor"):
        body = fetch(app, setup, visitor, rule).get_data(as_text=True)
        assert leaks(body, rule, setup["labels"]), visitor
        page = app.test_client()
        plant_session(app, page, setup["visitors"][visitor])
        html = page.get(f"/documents/{document}/revisions/1").get_data(as_text=True)
        assert "Written by tiny-" in html
