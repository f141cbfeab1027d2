"""Experiments: arms by document, both arms written, the verdict acted on, and the pages,
API and commands that run them (tiny models; tests/test_experiments_real.py runs the
catalog's)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from srcflask.documents import service as documents
from srcflask.experiments import service as experiments
from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.models import (
    Arm,
    AuditEvent,
    Decision,
    Experiment,
    ExperimentStatus,
    MachineText,
    MachineTextStatus,
    ModelVersion,
    User,
)
from srcflask.registry import service as registry

from .factories import DocumentFactory, ModelVersionFactory
from .support import claims_die

BODY = "The harbour committee met on Tuesday. The new pier is late again, and the"


@pytest.fixture
def challenger(app, production_model, tiny_models) -> str:
    """A second tiny version to challenge production with; returns its label."""
    with app.app_context():
        version = registry.import_model(
            str(tiny_models["llama-other"]), "tiny-challenger", actor=None
        ).version
        return version.label


def version(label: str) -> ModelVersion:
    return registry.find_version(label)


def start(label: str, preset: str | None = "greedy", share: float = 0.5, **options) -> int:
    return experiments.start(
        version(label), preset, share, actor=None, confirmed=True, **options
    ).id


def save_documents(owner_id: int, editor_id: int | None, count: int) -> list[int]:
    owner = db.session.get(User, owner_id)
    return [
        documents.create_document(owner, f"Minutes {i}", f"{BODY} {i}", editor_id).id
        for i in range(count)
    ]


def texts_of(experiment_id: int) -> list[MachineText]:
    return db.session.scalars(
        select(MachineText).where(MachineText.experiment_id == experiment_id)
    ).all()


# -- starting ------------------------------------------------------------------------


def test_starting_needs_a_production_model_a_confirmation_and_no_other_experiment(app, tiny_models):
    with app.app_context():
        other = registry.import_model(str(tiny_models["llama-other"]), "other", actor=None)
        with pytest.raises(experiments.ExperimentError, match="production model first"):
            experiments.start(other.version, actor=None, confirmed=True)
        chat = registry.import_model(str(tiny_models["llama-chat"]), "chat", actor=None)
        registry.set_alias(chat.version, "production", actor=None)
        with pytest.raises(experiments.ConfirmationNeeded):
            experiments.start(other.version, actor=None)
        with pytest.raises(experiments.ExperimentError, match="champion already"):
            experiments.start(chat.version, actor=None, confirmed=True)
        for share in (0, 0.01, 0.99, 1.5, float("nan")):
            with pytest.raises(experiments.ExperimentError, match="share"):
                experiments.start(other.version, None, share, actor=None, confirmed=True)
        with pytest.raises(experiments.ExperimentError, match="preset"):
            experiments.start(other.version, "fastest", actor=None, confirmed=True)
        assert db.session.scalar(select(Experiment.id)) is None

        # The same version with another preset is a fair challenger.
        first = experiments.start(chat.version, "greedy", actor=None, confirmed=True)
        assert first.champion_preset == "editor" and first.challenger_preset == "greedy"
        with pytest.raises(experiments.ExperimentError, match="running already"):
            experiments.start(other.version, actor=None, confirmed=True)
        events = db.session.scalars(
            select(AuditEvent.action).where(AuditEvent.action.like("experiment.%"))
        ).all()
        assert events == ["experiment.start"]


def test_a_document_keeps_its_arm_and_the_split_follows_the_share(app):
    with app.app_context():
        experiment = Experiment(id=7, share=0.3)
        arms = [experiments.arm_of(experiment, document_id) for document_id in range(1, 4001)]
        again = [experiments.arm_of(experiment, document_id) for document_id in range(1, 4001)]
        assert arms == again
        share = arms.count(Arm.CHALLENGER) / len(arms)
        # 4,000 documents: the standard error of the share is 0.007.
        assert 0.27 < share < 0.33, share
        other = Experiment(id=8, share=0.3)
        moved = sum(experiments.arm_of(other, d) != a for d, a in enumerate(arms, start=1))
        assert moved > 800  # another experiment splits the documents afresh


# -- both arms written ---------------------------------------------------------------


def test_each_arm_writes_with_its_own_version_and_preset(
    app, sponsor, editor, production_model, challenger
):
    with app.app_context():
        experiment_id = start(challenger, preset="greedy")
        ids = save_documents(sponsor.id, editor.id, 16)
        work.run_pending()
        experiment = db.session.get(Experiment, experiment_id)
        texts = texts_of(experiment_id)
        assert len(texts) == 16
        assert {t.arm for t in texts} == {"champion", "challenger"}
        for text in texts:
            document_id = text.revision.document_id
            assert text.arm == experiments.arm_of(experiment, document_id).value
            assert text.status is MachineTextStatus.DONE, text.error
            if text.arm == "challenger":
                assert text.model_version.label == challenger
                assert text.preset == "greedy" and text.settings["strategy"] == "greedy"
            else:
                assert text.model_version.label == production_model
                assert text.preset == "editor" and text.settings["strategy"] == "beam"
        # A new save of a document stays in its arm.
        document = db.session.get(documents.Document, ids[0])
        first_arm = texts_of(experiment_id)[0].arm
        owner = db.session.get(User, sponsor.id)
        documents.save_document(document, owner, document.title, document.body + " more", None)
        latest = documents.latest_revision(document).machine_text
        assert latest.arm == first_arm and latest.experiment_id == experiment_id


def test_a_worker_killed_mid_experiment_loses_no_assignment(
    app, sponsor, production_model, challenger
):
    with app.app_context():
        experiment_id = start(challenger, preset=None)
        save_documents(sponsor.id, None, 8)
        arms = {t.id: t.arm for t in texts_of(experiment_id)}
        # A worker claims every text and dies holding them.
        assert sorted(claims_die(8)) == sorted(arms)
        work.run_pending()
        db.session.expire_all()
        for text in texts_of(experiment_id):
            assert text.arm == arms[text.id]
            assert text.status is MachineTextStatus.DONE
            assert text.attempts == 2
            expected = challenger if text.arm == "challenger" else production_model
            assert text.model_version.label == expected


def test_a_challenger_deleted_mid_experiment_stops_it_and_production_writes(
    app, sponsor, production_model, challenger
):
    with app.app_context():
        experiment_id = start(challenger, preset=None)
        save_documents(sponsor.id, None, 6)
        db.session.delete(version(challenger))
        db.session.commit()
        work.run_pending()
        experiment = db.session.get(Experiment, experiment_id)
        assert experiment.status is ExperimentStatus.STOPPED
        assert "challenger's version was deleted" in experiment.ended_because
        written = db.session.scalars(select(MachineText)).all()
        assert len(written) == 6
        assert all(t.status is MachineTextStatus.DONE for t in written)
        assert {t.model_version.label for t in written} == {production_model}
        # Texts the champion wrote before the end keep their arm; the rest left the experiment.
        assert {t.arm for t in written} <= {None, "champion"}


def test_stopping_sends_texts_not_yet_written_to_production(
    app, sponsor, production_model, challenger
):
    with app.app_context():
        experiment_id = start(challenger, preset=None)
        save_documents(sponsor.id, None, 6)
        experiment = db.session.get(Experiment, experiment_id)
        with pytest.raises(experiments.ConfirmationNeeded):
            experiments.stop(experiment, actor=None)
        experiments.stop(experiment, actor=None, confirmed=True)
        assert texts_of(experiment_id) == []
        work.run_pending()
        labels = {t.model_version.label for t in db.session.scalars(select(MachineText))}
        assert labels == {production_model}
        with pytest.raises(experiments.ExperimentError, match="ended already"):
            experiments.stop(experiment, actor=None, confirmed=True)


def test_moving_production_by_hand_ends_the_experiment(app, production_model, challenger):
    with app.app_context():
        experiment_id = start(challenger)
        registry.set_alias(version(challenger), "production", actor=None)
        experiment = db.session.get(Experiment, experiment_id)
        assert experiment.status is ExperimentStatus.STOPPED
        assert "production was moved to" in experiment.ended_because


# -- the verdict, acted on -----------------------------------------------------------


@pytest.fixture
def rows_experiment(app, editor):
    """An experiment between two registry rows, and a way to add reviewed texts to it."""
    with app.app_context():
        champion = ModelVersionFactory(name="champ")
        rival = ModelVersionFactory(name="rival")
        registry.set_alias(champion, "production", actor=None)
        experiment = Experiment(
            champion=champion,
            challenger=rival,
            challenger_settings={"strategy": "greedy"},
            challenger_preset="greedy",
            started_by_label="command line",
        )
        db.session.add(experiment)
        db.session.commit()
        experiment_id = experiment.id

    def review(arm: str, decision: Decision, count: int, *, keep: bool = False) -> None:
        with app.app_context():
            person = db.session.get(User, editor.id)
            for _ in range(count):
                document = DocumentFactory(
                    editor=person, machine_text__text="It rained. The roads flooded."
                )
                text = document.revisions[0].machine_text
                text.experiment_id, text.arm = experiment_id, arm
                db.session.commit()
                documents.review_machine_text(
                    document, person, decision, keep_until=10 if keep else None
                )

    review.experiment_id = experiment_id
    return review


def test_the_guardrail_stops_a_challenger_editors_reject(app, rows_experiment):
    rows_experiment("champion", Decision.ACCEPTED, 30)
    rows_experiment("challenger", Decision.REJECTED, 29)
    with app.app_context():
        assert db.session.get(Experiment, rows_experiment.experiment_id).running
    rows_experiment("challenger", Decision.REJECTED, 1)  # the 30th: enough to decide
    with app.app_context():
        experiment = db.session.get(Experiment, rows_experiment.experiment_id)
        assert experiment.status is ExperimentStatus.STOPPED
        assert experiment.verdict == "worse"
        assert experiment.ended_because == "Stopped by the rule: challenger worse: stopped."
        assert (
            db.session.scalar(
                select(AuditEvent.details).where(AuditEvent.action == "experiment.stop")
            )["verdict"]
            == "worse"
        )


def test_promotion_waits_for_better_then_moves_production_and_can_be_rolled_back(
    app, rows_experiment
):
    rows_experiment("champion", Decision.REJECTED, 20)
    rows_experiment("challenger", Decision.ACCEPTED, 20)
    with app.app_context():
        experiment = db.session.get(Experiment, rows_experiment.experiment_id)
        with pytest.raises(experiments.ExperimentError, match="Keep collecting"):
            experiments.promote(experiment, actor=None, confirmed=True)
    rows_experiment("champion", Decision.KEPT_PART, 10, keep=True)
    rows_experiment("challenger", Decision.ACCEPTED, 10)
    with app.app_context():
        experiment = db.session.get(Experiment, rows_experiment.experiment_id)
        assert experiment.running and experiment.verdict == "better"  # no auto-promotion
        with pytest.raises(experiments.ConfirmationNeeded):
            experiments.promote(experiment, actor=None)
        promoted = experiments.promote(experiment, actor=None, confirmed=True)
        assert promoted.label == "rival:" + str(promoted.version)
        assert registry.production_version().id == promoted.id
        assert promoted.generation_settings == {"strategy": "greedy"}
        assert experiment.status is ExperimentStatus.PROMOTED
        assert registry.rollback_target().name == "champ"
        actions = db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions[-3:] == ["experiment.promote", "model.settings", "model.alias"]


def test_automatic_promotion_when_asked_for(app, rows_experiment):
    with app.app_context():
        experiment = db.session.get(Experiment, rows_experiment.experiment_id)
        experiment.auto_promote = True
        db.session.commit()
    rows_experiment("champion", Decision.REJECTED, 30)
    rows_experiment("challenger", Decision.ACCEPTED, 30)
    with app.app_context():
        experiment = db.session.get(Experiment, rows_experiment.experiment_id)
        assert experiment.status is ExperimentStatus.PROMOTED
        assert registry.production_version().name == "rival"


def test_the_results_count_every_decision_and_its_kept_share(app, rows_experiment, admin_client):
    rows_experiment("champion", Decision.ACCEPTED, 3)
    rows_experiment("champion", Decision.REJECTED, 1)
    rows_experiment("challenger", Decision.KEPT_PART, 2, keep=True)
    with app.app_context():
        found = experiments.results(db.session.get(Experiment, rows_experiment.experiment_id))
        champion = {d.decision: d.count for d in found.champion.decisions}
        assert champion == {"accepted": 3, "edited": 0, "kept_part": 0, "rejected": 1}
        assert found.champion.reviews == 4 and found.champion.written == 4
        assert found.champion.kept.value == pytest.approx(0.75)
        assert found.challenger.reviews == 2
        assert 0 < found.challenger.kept.value < 1  # "It rained." of two sentences
        assert found.verdict.outcome == "collecting"
        assert "more reviews needed" in found.verdict.message
        assert [line.css for line in found.chart.lines] == ["chart-champion", "chart-challenger"]
    # Too few reviews for some intervals: the page says so rather than failing.
    page = admin_client.get(f"/admin/experiments/{rows_experiment.experiment_id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "too few for an interval" in text
    assert 'data-arm="champion" data-field="accepted">3 ' in text


# -- pages, API and commands ----------------------------------------------------------


def test_admins_start_follow_and_stop_an_experiment_from_the_pages(
    app, admin_client, production_model, challenger
):
    with app.app_context():
        challenger_id = version(challenger).id
    page = admin_client.get(f"/admin/experiments?challenger={challenger_id}")
    assert page.status_code == 200
    assert f'<option selected value="{challenger_id}">' in page.get_data(as_text=True)

    form = {"challenger": challenger_id, "preset": "greedy", "share": "40"}
    asked = admin_client.post("/admin/experiments", data=form)
    assert asked.status_code == 200
    assert "Yes, start it" in asked.get_data(as_text=True)
    with app.app_context():
        assert experiments.running() is None  # nothing yet: it asks first

    bad = admin_client.post("/admin/experiments", data=form | {"share": "200", "confirm": "y"})
    assert bad.status_code == 422 and "between 5 and 95" in bad.get_data(as_text=True)

    started = admin_client.post("/admin/experiments", data=form | {"confirm": "y"})
    assert started.status_code == 303
    with app.app_context():
        experiment = experiments.running()
        assert experiment.share == 0.4 and experiment.challenger_preset == "greedy"
        experiment_id = experiment.id
    assert started.location.endswith(f"/admin/experiments/{experiment_id}")
    shown = admin_client.get(started.location).get_data(as_text=True)
    assert "Keep collecting" in shown and challenger in shown and "<svg" in shown

    again = admin_client.post("/admin/experiments", data=form | {"confirm": "y"})
    assert again.status_code == 409 and "running already" in again.get_data(as_text=True)

    stop_url = f"/admin/experiments/{experiment_id}/stop"
    assert "Yes, stop it" in admin_client.post(stop_url).get_data(as_text=True)
    with app.app_context():
        assert experiments.running() is not None
    assert admin_client.post(stop_url, data={"confirm": "y"}).status_code == 303
    with app.app_context():
        assert db.session.get(Experiment, experiment_id).status is ExperimentStatus.STOPPED
    refused = admin_client.post(
        f"/admin/experiments/{experiment_id}/promote", data={"confirm": "y"}, follow_redirects=True
    )
    assert "has ended already" in refused.get_data(as_text=True)
    assert admin_client.get("/admin/experiments/999999").status_code == 404


def test_the_api_starts_reads_stops_and_refuses_promotion_without_evidence(
    app, admin, production_model, challenger
):
    from srcflask.models import ApiToken

    with app.app_context():
        token, secret = ApiToken.issue(db.session.get(User, admin.id), "t", 30)
        db.session.add(token)
        db.session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"challenger": challenger, "preset": "greedy", "share": 0.5}

    unconfirmed = client.post("/api/v1/experiments", json=body, headers=headers)
    assert (
        unconfirmed.status_code == 409 and "confirm: true" in unconfirmed.json["error"]["message"]
    )
    for wrong in ({"share": 2}, {"preset": "fastest"}, {"share": "half"}):
        answer = client.post("/api/v1/experiments", json=body | wrong, headers=headers)
        assert answer.status_code == 422, answer.json
    missing = client.post(
        "/api/v1/experiments", json=body | {"challenger": "nothing:3"}, headers=headers
    )
    assert missing.status_code == 404

    started = client.post("/api/v1/experiments", json=body | {"confirm": True}, headers=headers)
    assert started.status_code == 201, started.json
    experiment_id = started.json["experiment"]["id"]
    assert started.json["decision"]["outcome"] == "collecting"
    assert [arm["arm"] for arm in started.json["arms"]] == ["champion", "challenger"]

    listed = client.get("/api/v1/experiments", headers=headers).json["items"]
    assert [item["id"] for item in listed] == [experiment_id]
    read = client.get(f"/api/v1/experiments/{experiment_id}", headers=headers)
    assert read.json["experiment"]["challenger"] == f"{challenger} (greedy)"

    promote = client.post(
        f"/api/v1/experiments/{experiment_id}/promote", json={"confirm": True}, headers=headers
    )
    assert promote.status_code == 409 and "nothing was changed" in promote.json["error"]["message"]
    stop = client.post(f"/api/v1/experiments/{experiment_id}/stop", json={}, headers=headers)
    assert stop.status_code == 409
    stop = client.post(
        f"/api/v1/experiments/{experiment_id}/stop", json={"confirm": True}, headers=headers
    )
    assert stop.status_code == 200 and stop.json["experiment"]["status"] == "stopped"
    assert client.get("/api/v1/experiments/424242", headers=headers).status_code == 404


def test_the_commands_start_report_and_stop(app, runner, production_model, challenger):
    started = runner.invoke(
        args=["experiments", "start", "--challenger", challenger, "--share", "0.25", "--yes"]
    )
    assert started.exit_code == 0, started.output
    assert "started" in started.output and "25%" in started.output
    status = runner.invoke(args=["experiments", "status", "--json"])
    assert status.exit_code == 0, status.output
    report = json.loads(status.output)
    assert report["experiment"]["share"] == 0.25 and report["experiment"]["status"] == "running"
    promote = runner.invoke(args=["experiments", "promote", "--yes"])
    assert promote.exit_code == 1 and "nothing was changed" in promote.output
    stopped = runner.invoke(args=["experiments", "stop", "--yes"])
    assert stopped.exit_code == 0 and "stopped" in stopped.output
    again = runner.invoke(args=["experiments", "stop", "--yes"])
    assert again.exit_code == 1 and "no experiment is running" in again.output


def test_the_chart_spans_the_reviews_from_first_to_last():
    from datetime import UTC, datetime, timedelta

    from srcflask.experiments.charts import LEFT, RIGHT, WIDTH, kept_share_chart

    start = datetime(2026, 12, 1, tzinfo=UTC)
    # Four reviews within half a second, as when a batch of decisions lands at once.
    timeline = [
        (start + timedelta(milliseconds=100 * i), arm, share)
        for i, (arm, share) in enumerate(
            [(Arm.CHAMPION, 1.0), (Arm.CHALLENGER, 0.0), (Arm.CHAMPION, 0.0), (Arm.CHALLENGER, 1.0)]
        )
    ]
    chart = kept_share_chart(timeline, {Arm.CHAMPION: "a:1", Arm.CHALLENGER: "b:1"})
    champion, rival = chart.lines
    assert champion.points.startswith(f"{LEFT}")
    assert rival.last_x == WIDTH - RIGHT  # the last review is at the right edge
    assert champion.tip == "Champion, a:1: 50% kept over 2 reviews"
    assert kept_share_chart([], {}).lines == []


def test_two_admins_starting_at_once_get_one_experiment(
    app, production_model, challenger, monkeypatch
):
    """The second start passes the "one running" check before the first commits: the
    database's unique index refuses it, with the same message."""
    with app.app_context():
        start(challenger)
        monkeypatch.setattr(experiments, "running", lambda: None)
        with pytest.raises(experiments.ExperimentError, match="running already"):
            start(challenger, preset="creative")
        monkeypatch.undo()
        assert db.session.scalar(select(func.count()).select_from(Experiment)) == 1


def test_a_finished_training_run_offers_an_experiment_with_its_version(app, admin_client):
    from srcflask.models import TrainingRun, TrainingStatus

    with app.app_context():
        parent = ModelVersionFactory(name="base")
        tuned = ModelVersionFactory(name="tuned", parent=parent)
        registry.set_alias(parent, "production", actor=None)
        run = TrainingRun(
            parent=parent,
            name="tuned",
            status=TrainingStatus.DONE,
            result=tuned,
            created_by_label="command line",
        )
        db.session.add(run)
        db.session.commit()
        run_id, tuned_id = run.id, tuned.id
    page = admin_client.get(f"/admin/training/{run_id}").get_data(as_text=True)
    link = f"/admin/experiments?challenger={tuned_id}#start"
    assert f'href="{link}"' in page and "Start an experiment with this version" in page
    chosen = admin_client.get(link).get_data(as_text=True)
    assert f'<option selected value="{tuned_id}">tuned:' in chosen
