"""Learning from reviews: per-version metrics, their charts, and the reviewed pairs' export."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import render_template_string
from rapidfuzz.distance import Levenshtein
from sqlalchemy import insert, select

from srcflask.documents.service import final_text_distance
from srcflask.extensions import db
from srcflask.models import (
    Decision,
    Document,
    MachineText,
    MachineTextStatus,
    Review,
    Revision,
    RevisionOrigin,
    Role,
)
from srcflask.registry import metrics as version_metrics
from srcflask.registry.charts import review_chart

from .factories import DocumentFactory, ModelVersionFactory, UserFactory
from .test_api import (
    bearer,
    issue,  # noqa: F401 - a fixture
)
from .test_review_loop import written  # noqa: F401 - a fixture

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)  # a Wednesday
TODAY = NOW.date()


def reviewed(
    version,
    decision: Decision | None,
    *,
    machine="the machine wrote this.",
    final=None,
    wait=60.0,
    reviewed_at=NOW,
    title="Title",
    body="Body text.",
):
    """A document whose machine text `version` wrote, reviewed with `decision` (None: not yet)."""
    document = DocumentFactory(
        title=title,
        body=body,
        machine_text__text=machine,
        machine_text__model_version=version,
        machine_text__finished_at=reviewed_at - timedelta(seconds=wait),
    )
    machine_text = document.revisions[0].machine_text
    if decision is not None:
        db.session.add(
            Review(
                machine_text=machine_text,
                decision=decision,
                text=final if decision is Decision.EDITED else None,
                edit_distance=final_text_distance(decision, machine, final),
                created_at=reviewed_at,
            )
        )
        db.session.commit()
    return document


@pytest.fixture
def fixture_reviews(app):
    """v1: 4 texts, 3 reviewed over two weeks; v2: 1 text, not reviewed."""
    with app.app_context():
        v1, v2 = ModelVersionFactory(), ModelVersionFactory()
        reviewed(v1, Decision.ACCEPTED, wait=60, reviewed_at=NOW - timedelta(days=7))
        reviewed(v1, Decision.EDITED, machine="abcd", final="abXY", wait=120)
        reviewed(v1, Decision.REJECTED, wait=600, title="=cmd|' /C calc'!A0")
        reviewed(v1, None)
        reviewed(v2, None)
        return v1.id, v2.id, v1.label


def test_a_review_records_the_edit_distance_to_the_editors_final_text(
    app,
    editor_client,
    written,  # noqa: F811
):
    accepted, edited, rejected = written("One.", "Two.", "Three.", text="It rained all week.")
    for document_id, data in [
        (accepted, {"decision": "accept"}),
        (edited, {"decision": "edit", "text": "It snowed all week."}),
        (rejected, {"decision": "reject"}),
    ]:
        editor_client.post(f"/editor/documents/{document_id}/review", data=data)

    with app.app_context():
        distances = dict(
            db.session.execute(
                select(Revision.document_id, Review.edit_distance)
                .join(MachineText, MachineText.id == Review.machine_text_id)
                .join(Revision, Revision.id == MachineText.revision_id)
            ).all()
        )
    expected = Levenshtein.normalized_distance("It rained all week.", "It snowed all week.")
    assert distances == {accepted: 0.0, edited: pytest.approx(expected), rejected: None}
    assert 0 < expected < 0.5


def test_metrics_per_version_on_fixture_data(app, fixture_reviews):
    v1, v2, _ = fixture_reviews
    with app.app_context():
        found = version_metrics.version_metrics([v1, v2], today=TODAY)

    first = found[v1]
    assert (first.written, first.reviewed) == (4, 3)
    assert (first.accepted, first.edited, first.rejected) == (1, 1, 1)
    assert first.share("accepted") == pytest.approx(1 / 3)
    # Accepted 0, edited "abcd" -> "abXY" 0.5; a rejected text has no final text.
    assert first.median_edit_distance == pytest.approx(0.25)
    assert first.median_review_seconds == pytest.approx(120)
    weeks = {week.start: week for week in first.weeks}
    assert len(first.weeks) == version_metrics.CHART_WEEKS
    this_week, last_week = date(2026, 11, 16), date(2026, 11, 9)
    assert (weeks[this_week].edited, weeks[this_week].rejected) == (1, 1)
    assert (weeks[last_week].accepted, weeks[last_week].reviewed) == (1, 1)
    assert sum(week.reviewed for week in first.weeks) == 3

    second = found[v2]
    assert (second.written, second.reviewed, second.median_edit_distance) == (1, 0, None)
    assert second.share("accepted") is None


def test_the_chart_is_server_drawn_svg_whose_bars_are_counts(app):
    weeks = [
        version_metrics.Week(date(2026, 11, 2)),
        version_metrics.Week(date(2026, 11, 9), 6, 2, 0),
    ]
    with app.test_request_context():
        svg = render_template_string(
            '{% from "admin/_review_chart.html" import review_chart_svg %}'
            "{{ review_chart_svg(chart) }}",
            chart=review_chart(weeks, "Reviews of <b>x</b>"),
        ).strip()

    assert svg.startswith("<svg") and "<script" not in svg
    assert "&lt;b&gt;x&lt;/b&gt;" in svg and "<b>" not in svg
    assert ">8</text>" in svg  # the week's count above its bar
    assert "8 reviewed (6 accepted, 2 edited, 0 kept in part, 0 rejected)" in svg
    assert svg.count('class="chart-accepted"') == 1  # an empty week draws no bar


def test_the_models_page_shows_each_versions_review_metrics(app, admin_client, fixture_reviews):
    _, _, label = fixture_reviews
    page = admin_client.get("/admin/models").get_data(as_text=True)

    assert f'data-metrics="{label}"' in page
    assert "4 written, 3 reviewed" in page
    assert "1 accepted (33%)" in page and "0.25" in page and "2 min" in page
    assert "<svg" in page and f"Reviews of {label} per week" in page
    assert "1 machine text written, none reviewed yet." in page


def test_the_api_gives_a_versions_metrics_to_admins(client, admin, issue, fixture_reviews):  # noqa: F811
    _, _, label = fixture_reviews
    name, version = label.split(":")
    headers = bearer(issue(admin))
    answer = client.get(f"/api/v1/models/{name}/{version}/metrics", headers=headers)

    assert answer.status_code == 200, answer.json
    body = answer.json
    assert (body["label"], body["written"], body["reviewed"]) == (label, 4, 3)
    assert body["acceptance"]["edited"] == pytest.approx(1 / 3)
    assert body["median_edit_distance"] == pytest.approx(0.25)
    assert len(body["weeks"]) == version_metrics.CHART_WEEKS
    missing = client.get(f"/api/v1/models/{name}/999/metrics", headers=headers)
    assert missing.status_code == 404


# -- export ---------------------------------------------------------------------


def test_reviewed_pairs_download_as_jsonl_and_csv(app, admin_client, fixture_reviews):
    _, _, label = fixture_reviews
    response = admin_client.get("/admin/reviews/export.jsonl")
    assert response.status_code == 200
    assert response.is_streamed
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="srcflask-reviews.jsonl"'
    )
    rows = [json.loads(line) for line in response.get_data(as_text=True).splitlines()]

    assert [row["decision"] for row in rows] == ["accepted", "edited", "rejected"]
    accepted, edited, rejected = rows
    assert accepted["final_text"] == accepted["machine_text"] == "the machine wrote this."
    assert (edited["machine_text"], edited["final_text"], edited["edit_distance"]) == (
        "abcd",
        "abXY",
        0.5,
    )
    assert rejected["final_text"] is None and rejected["edit_distance"] is None
    assert {row["model_version"] for row in rows} == {label}
    assert accepted["context_title"] == "Title" and accepted["context_body"] == "Body text."
    assert accepted["written_at"] < accepted["reviewed_at"]

    text = admin_client.get("/admin/reviews/export.csv").get_data(as_text=True)
    table = list(csv.DictReader(io.StringIO(text)))
    assert [row["decision"] for row in table] == ["accepted", "edited", "rejected"]
    assert table[2]["context_title"].startswith("'=")  # a formula stays text in a spreadsheet


def test_the_export_filters_by_version_and_review_date(app, admin_client, fixture_reviews):
    v1, v2, _ = fixture_reviews

    def decisions(**query):
        answer = admin_client.get("/admin/reviews/export.jsonl", query_string=query)
        assert answer.status_code == 200
        return [json.loads(line)["decision"] for line in answer.get_data(as_text=True).splitlines()]

    assert decisions(version=v2) == []
    assert decisions(version=v1) == ["accepted", "edited", "rejected"]
    assert decisions(since=TODAY.isoformat()) == ["edited", "rejected"]
    assert decisions(until=(TODAY - timedelta(days=1)).isoformat()) == ["accepted"]
    assert decisions(since=TODAY.isoformat(), until=TODAY.isoformat()) == ["edited", "rejected"]
    page = admin_client.get("/admin/reviews", query_string={"version": v1}).get_data(as_text=True)
    assert 'data-matching="3"' in page


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"version": "999"}, "Not a valid choice"),
        ({"version": "x'; drop"}, "Not a valid choice"),
        ({"since": "yesterday"}, "Not a valid date value"),
        ({"since": "2026-11-20", "until": "2026-11-01"}, "The end date is before the start date."),
    ],
)
def test_bad_filters_are_refused_with_the_reason(admin_client, fixture_reviews, query, message):
    for url in ("/admin/reviews", "/admin/reviews/export.csv"):
        answer = admin_client.get(url, query_string=query)
        assert answer.status_code == 400
        assert message in answer.get_data(as_text=True)


def _many_reviews(version_id: int, editor_id: int, owner_id: int, count: int, start: int) -> None:
    """`count` reviewed documents at once, with texts of about 1 KB."""
    text = "A sentence the model wrote about the weather. " * 22
    now = datetime.now(UTC)
    ids = range(start, start + count)
    db.session.execute(
        insert(Document),
        [{"id": i, "owner_id": owner_id, "title": f"D{i}", "body": text} for i in ids],
    )
    db.session.execute(
        insert(Revision),
        [
            {
                "id": i,
                "document_id": i,
                "number": 1,
                "title": f"D{i}",
                "body": text,
                "origin": RevisionOrigin.SAVE,
                "author_id": owner_id,
            }
            for i in ids
        ],
    )
    db.session.execute(
        insert(MachineText),
        [
            {
                "id": i,
                "revision_id": i,
                "status": MachineTextStatus.DONE,
                "text": text,
                "model_version_id": version_id,
                "finished_at": now,
            }
            for i in ids
        ],
    )
    db.session.execute(
        insert(Review),
        [
            {
                "id": i,
                "machine_text_id": i,
                "editor_id": editor_id,
                "decision": Decision.ACCEPTED,
                "edit_distance": 0.0,
                "created_at": now,
            }
            for i in ids
        ],
    )
    db.session.commit()


def test_the_export_streams_in_flat_memory(app, admin_client):
    """Ten times the rows must not take ten times the memory: rows are read in chunks."""
    with app.app_context():
        version = ModelVersionFactory()
        editor = UserFactory(role=Role.EDITOR)
        owner = UserFactory(role=Role.SPONSOR)
        ids = (version.id, editor.id, owner.id)

    def peak_while_downloading(rows: int) -> tuple[int, int]:
        tracemalloc.start()  # before the request: the query runs as it starts streaming
        response = admin_client.get("/admin/reviews/export.jsonl")
        lines = 0
        for chunk in response.response:
            lines += chunk.count(b"\n") if isinstance(chunk, bytes) else chunk.count("\n")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        response.close()
        assert lines == rows
        return peak

    with app.app_context():
        _many_reviews(*ids, count=600, start=1_000_000)
    small = peak_while_downloading(600)
    with app.app_context():
        _many_reviews(*ids, count=5400, start=2_000_000)
    large = peak_while_downloading(6000)

    # Held in memory, 6,000 rows of ~2 KB would be 12 MB beside 1.2 MB for 600.
    assert large < 2.5 * small, (small, large)
    assert large < 6 * 1024 * 1024
