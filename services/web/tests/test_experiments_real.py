"""An experiment end to end with the catalog's real models: the default against another,
twenty realistic documents, a worker dying mid-experiment, editors deciding through the
pages, and the experiment page counting exactly what they decided."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.ml import catalog
from srcflask.ml.quality import load_documents
from srcflask.models import Experiment, MachineText, MachineTextStatus

from .support import claims_die
from .test_documents import create, doc_id_from

pytestmark = pytest.mark.slow

DOCUMENTS = Path(__file__).resolve().parent.parent / "bench" / "documents.jsonl"
DECISIONS = ("accept", "reject", "keep", "edit")
FIELDS = {"accept": "accepted", "reject": "rejected", "keep": "kept_part", "edit": "edited"}


@pytest.fixture
def app(app_factory):
    """The app with the model wheel cache shared between runs (downloaded once)."""
    cache = os.environ.get("SRCFLASK_TEST_MODEL_CACHE") or Path.home() / ".cache" / "srcflask"
    return app_factory(MODEL_CACHE=str(cache))


def decide(editor_client, document_id: int, decision: str) -> str:
    """Review a document's machine text through the review page; return what was done."""
    state = editor_client.get(f"/documents/{document_id}/machine-text").json
    assert state["status"] == "done" and state["blind"] is True, state
    form = {"decision": decision}
    ends = state["sentence_ends"]
    if decision == "keep":
        if len(ends) < 2:  # one sentence: nothing to keep part of
            return decide(editor_client, document_id, "accept")
        form["keep_until"] = str(ends[0])
    elif decision == "edit":
        form["text"] = state["text"].rstrip() + " (Checked with the chair.)"
    answer = editor_client.post(f"/editor/documents/{document_id}/review", data=form)
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    return decision


def test_the_default_and_another_catalog_model_compared_on_twenty_documents(
    app, runner, sponsor_client, editor, editor_client, admin_client
):
    other = next(name for name in sorted(catalog.CATALOG) if name != catalog.DEFAULT_MODEL)
    for args in (["models", "pull-default"], ["models", "pull", other]):
        pulled = runner.invoke(args=args)
        assert pulled.exit_code == 0, pulled.output
    started = runner.invoke(args=["experiments", "start", "--challenger", f"{other}:1", "--yes"])
    assert started.exit_code == 0, started.output

    documents = load_documents(DOCUMENTS)[:20]
    ids = [
        doc_id_from(create(sponsor_client, d.title[:200], d.body, editor_id=str(editor.id)))
        for d in documents
    ]
    with app.app_context():
        experiment = db.session.scalar(select(Experiment))
        arms = dict(
            db.session.execute(
                select(MachineText.id, MachineText.arm).where(
                    MachineText.experiment_id == experiment.id
                )
            ).all()
        )
        assert len(arms) == 20 and set(arms.values()) == {"champion", "challenger"}
        # A worker claims four texts and dies before writing them.
        assert len(claims_die(4)) == 4
        work.run_pending()
        db.session.expire_all()
        texts = db.session.scalars(
            select(MachineText).where(MachineText.experiment_id == experiment.id)
        ).all()
        labels = {"champion": f"{catalog.DEFAULT_MODEL}:1", "challenger": f"{other}:1"}
        for text in texts:
            assert text.arm == arms[text.id]  # nobody lost an assignment
            assert text.status is MachineTextStatus.DONE, text.error
            assert text.model_version.label == labels[text.arm]
            assert text.text and text.text.strip()
        arm_of_document = {text.revision.document_id: text.arm for text in texts}

    decided: dict[str, Counter] = {"champion": Counter(), "challenger": Counter()}
    for index, document_id in enumerate(ids):
        done = decide(editor_client, document_id, DECISIONS[index % len(DECISIONS)])
        decided[arm_of_document[document_id]][FIELDS[done]] += 1

    page = admin_client.get(f"/admin/experiments/{experiment.id}").get_data(as_text=True)
    for arm, counts in decided.items():
        written = re.search(rf'data-arm="{arm}" data-field="written">(\d+)', page)
        assert int(written.group(1)) == sum(1 for a in arms.values() if a == arm)
        reviews = re.search(rf'data-arm="{arm}" data-field="reviews">(\d+)', page)
        assert int(reviews.group(1)) == sum(counts.values())
        for field in FIELDS.values():
            shown = re.search(rf'data-arm="{arm}" data-field="{field}">(\d+) ', page)
            assert int(shown.group(1)) == counts[field], (arm, field, counts)
