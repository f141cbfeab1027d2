"""Fine-tuning on reviewed machine text: held-out loss goes down, runs resume and stop."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from srcflask.ml.engine import TextGenerator
from srcflask.ml.training import (
    Example,
    FineTuner,
    Hyperparameters,
    TrainingCancelled,
    heldout_scores,
    snapshot,
    split_by_document,
)

from .tinymodels import SENTENCES

# Editors always end a document the same way: something a random model cannot guess.
FINAL = " We will meet again next spring."


def examples(count: int = 24) -> list[Example]:
    return [
        Example(key=i, document_id=i // 2, context=SENTENCES[i % len(SENTENCES)], target=FINAL)
        for i in range(count)
    ]


HYPER = Hyperparameters(epochs=4, learning_rate=1e-2, batch_size=4, checkpoint_every=2, seed=1)


def test_the_held_out_split_keeps_each_document_on_one_side():
    training, heldout = split_by_document(examples(), 0.25, seed=3)
    assert {e.document_id for e in training}.isdisjoint({e.document_id for e in heldout})
    assert len(training) + len(heldout) == 24 and len(heldout) == 6
    assert split_by_document(examples(), 0.25, seed=3) == (training, heldout)  # reproducible
    record = snapshot(training, heldout)
    assert sorted(record["train_review_ids"] + record["heldout_review_ids"]) == list(range(24))
    assert record["sha256"] == snapshot(training, heldout)["sha256"]
    assert record["sha256"] != snapshot(heldout, training)["sha256"]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_lowers_the_held_out_loss(tiny_models, tmp_path, method):
    training, heldout = split_by_document(examples(), 0.25, seed=1)
    generator = TextGenerator(tiny_models["llama-trainable"], pack_weights=False)
    before = heldout_scores(generator, heldout)["bits_per_char"]
    hyper = replace(
        HYPER,
        method=method,
        learning_rate=HYPER.learning_rate / 5 if method == "full" else HYPER.learning_rate,
    )
    tuner = FineTuner(generator, training, hyper, tmp_path / "run")
    seen = []
    tuner.run(lambda progress: seen.append(progress) or True)
    after = heldout_scores(generator, heldout)["bits_per_char"]

    assert after < 0.7 * before, (before, after)
    assert [p.step for p in seen] == list(range(1, tuner.total_steps + 1))
    assert seen[-1].loss < seen[0].loss
    folder = tuner.save_merged(tmp_path / "merged")
    merged = TextGenerator(folder)  # an ordinary model folder, adapters merged in
    assert heldout_scores(merged, heldout)["bits_per_char"] == pytest.approx(after, rel=1e-3)


def test_a_generator_whose_weights_only_compute_is_not_fine_tuned(tiny_models, tmp_path):
    generator = TextGenerator(tiny_models["llama-trainable"])  # packed for generating
    if not any(p.is_mkldnn for p in generator.model.parameters()):
        pytest.skip("this PyTorch does not pack weights for oneDNN")
    training, _ = split_by_document(examples(), 0.25, seed=1)
    with pytest.raises(ValueError, match="pack_weights=False"):
        FineTuner(generator, training, HYPER, tmp_path / "run")


def test_a_stopped_run_resumes_from_its_checkpoint_to_the_same_end(tiny_models, tmp_path):
    training, heldout = split_by_document(examples(), 0.25, seed=1)

    straight = FineTuner(
        TextGenerator(tiny_models["llama-trainable"], pack_weights=False),
        training,
        HYPER,
        tmp_path / "a",
    )
    straight.run()
    expected = heldout_scores(straight.generator, heldout)["bits_per_char"]

    first = FineTuner(
        TextGenerator(tiny_models["llama-trainable"], pack_weights=False),
        training,
        HYPER,
        tmp_path / "b",
    )
    with pytest.raises(TrainingCancelled):
        first.run(lambda progress: progress.step < 5)  # stopped (or killed) after step 5
    assert first.resumable_step == 5
    again = FineTuner(
        TextGenerator(tiny_models["llama-trainable"], pack_weights=False),
        training,
        HYPER,
        tmp_path / "b",
    )
    assert again.run() == again.total_steps - 5  # only the steps left
    resumed = heldout_scores(again.generator, heldout)["bits_per_char"]

    assert resumed == pytest.approx(expected, rel=1e-4)


# -- the run as a job: the registry, the CLI, cancelling, a killed worker --------------------


def reviewed_documents(app, count: int, *, editor=None) -> None:
    """`count` documents whose machine text an editor edited into FINAL."""
    from srcflask.extensions import db
    from srcflask.models import Decision, Review

    from .factories import DocumentFactory

    with app.app_context():
        for i in range(count):
            document = DocumentFactory(
                title=f"Note {i}",
                body=SENTENCES[i % len(SENTENCES)],
                machine_text__text=" and then something else entirely.",
            )
            db.session.add(
                Review(
                    machine_text=document.revisions[0].machine_text,
                    decision=Decision.EDITED,
                    text=FINAL,
                    edit_distance=0.5,
                )
            )
        db.session.commit()


@pytest.fixture
def parent(app, tiny_models) -> str:
    """A trainable tiny model in the registry; its label."""
    from srcflask.registry import service as registry

    with app.app_context():
        return registry.import_model(
            str(tiny_models["llama-trainable"]), "tiny-base", actor=None
        ).version.label


TRAIN_ARGS = [
    "--epochs",
    "4",
    "--learning-rate",
    "1e-2",
    "--batch-size",
    "4",
    "--name",
    "tiny-tuned",
]


def test_hyperparameters_out_of_range_are_refused_with_the_reason(runner, parent):
    with pytest.raises(ValueError, match="learning_rate must be a number above 0"):
        Hyperparameters(learning_rate=float("nan"))
    with pytest.raises(ValueError, match="epochs must be at least 1; max_tokens must be at"):
        Hyperparameters(epochs=0, max_tokens=8)
    result = runner.invoke(
        args=["models", "train", "--from", parent, "--name", "x", "--learning-rate", "nan"]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "learning" in result.output.lower()


def test_training_refuses_with_too_few_reviews_and_says_how_many_are_needed(app, runner, parent):
    reviewed_documents(app, 7)
    result = runner.invoke(args=["models", "train", "--from", parent, *TRAIN_ARGS])

    assert result.exit_code == 1
    assert "needs at least 20 accepted or edited reviews; there are 7. 13 more" in result.output


def test_a_training_run_makes_a_new_version_with_its_lineage(app, runner, parent):
    from srcflask.models import AuditEvent, ModelVersion, TrainingRun, TrainingStatus
    from srcflask.registry import service as registry

    reviewed_documents(app, 24)
    result = runner.invoke(args=["models", "train", "--from", parent, *TRAIN_ARGS])
    assert result.exit_code == 0, result.output
    assert "step 1/" in result.output and "Held-out bits per character" in result.output

    with app.app_context():
        run = TrainingRun.query.one()
        assert run.status is TrainingStatus.DONE and run.step == run.total_steps
        tuned = registry.find_version("tiny-tuned")
        assert tuned.parent_id == registry.find_version(parent).id
        lineage = tuned.lineage
        assert lineage["parent"] == parent and lineage["training_run"] == run.id
        dataset = lineage["dataset"]
        assert len(dataset["train_review_ids"]) + len(dataset["heldout_review_ids"]) == 24
        assert len(dataset["sha256"]) == 64
        assert lineage["hyperparameters"]["epochs"] == 4
        metrics = lineage["metrics"]
        assert metrics["after"]["bits_per_char"] < 0.7 * metrics["before"]["bits_per_char"]
        comparison = lineage["comparison"]
        assert comparison["parent"]["label"] == parent
        assert comparison["version"]["label"] == tuned.label
        assert comparison["version"]["bits_per_char"] < comparison["parent"]["bits_per_char"]
        assert lineage["trained_by"] == "command line"
        assert "fine-tuned" in tuned.tags and ModelVersion.query.count() == 2
        assert AuditEvent.query.filter_by(action="model.train").count() == 1
    assert not (app.config["TRAINING_DIR"] and list(Path(app.config["TRAINING_DIR"]).glob("*")))

    # flask models evaluate --against-parent: both on the quality benchmark, then held out.
    evaluated = runner.invoke(
        args=[
            "models",
            "evaluate",
            "tiny-tuned:1",
            "--against-parent",
            "--limit",
            "2",
            "--max-new-tokens",
            "8",
        ]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert f"- {parent}, raw format" in evaluated.output
    assert "- tiny-tuned:1, raw format" in evaluated.output
    assert "Held-out reviews: 5 (texts written for 5)" in evaluated.output
    refused = runner.invoke(args=["models", "evaluate", parent, "--against-parent"])
    assert refused.exit_code == 1 and "was not fine-tuned from another version" in refused.output


def test_a_run_is_cancelled_queued_at_once_and_running_at_its_next_step(app, parent):
    from srcflask.extensions import db
    from srcflask.models import TrainingRun, TrainingStatus
    from srcflask.registry import service as registry
    from srcflask.registry import training

    reviewed_documents(app, 24)
    with app.app_context():
        version = registry.find_version(parent)
        queued = training.start(version, "never", HYPER, actor=None)
        training.cancel(queued, actor=None)
        assert queued.status is TrainingStatus.CANCELLED
        with pytest.raises(training.TrainingError, match="already ended"):
            training.cancel(queued, actor=None)

        running = training.start(version, "stopped", HYPER, actor=None)
        assert training.claim(running.id)

        def cancel_at_step_3(progress):
            if progress.step == 3:
                other = db.session.get(TrainingRun, running.id)
                training.cancel(other, actor=None)

        training.run(running.id, on_progress=cancel_at_step_3)
        db.session.refresh(running)
        assert running.status is TrainingStatus.CANCELLED and running.step == 3
        assert running.result_version_id is None
        assert (training.workdir(running.id) / "checkpoint.pt").exists()  # kept


def test_a_worker_killed_mid_training_is_resumed_from_its_checkpoint(app, parent):
    """A real `flask models train` process is killed; the runner takes the run over."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from srcflask.extensions import db
    from srcflask.models import TrainingRun, TrainingStatus
    from srcflask.registry import training

    reviewed_documents(app, 24)
    env = {
        **os.environ,
        "SRCFLASK_ENV": "testing",
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "SRCFLASK_INSTANCE_PATH": app.instance_path,
        "MODEL_STORE": app.config["MODEL_STORE"],
        "TRAINING_DIR": app.config["TRAINING_DIR"],
        "MODEL_CACHE": app.config["MODEL_CACHE"],
        "LOG_LEVEL": "WARNING",
    }
    args = ["--epochs", "6", "--learning-rate", "1e-2", "--batch-size", "2", "--name", "resumed"]
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "srcflask",
            "models",
            "train",
            "--from",
            parent,
            *args,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        step = 0
        while time.monotonic() < deadline and step < 7:  # past the checkpoint of step 5
            time.sleep(0.2)
            with app.app_context():
                run = db.session.scalar(db.select(TrainingRun))
                step = run.step if run else 0
                db.session.remove()
        assert step >= 7, worker.communicate(timeout=5)[0]
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)

    with app.app_context():
        run = db.session.scalar(db.select(TrainingRun))
        assert run.status is TrainingStatus.RUNNING  # as the killed worker left it
        assert training.run_pending() == 1  # its process is gone: taken over at once
        db.session.refresh(run)
        assert run.status is TrainingStatus.DONE, run.error
        assert run.attempts == 2 and run.step == run.total_steps
        assert run.metrics["resumed_at_step"] >= 5  # from the checkpoint, not from scratch
        assert run.result.lineage["metrics"]["resumed_at_step"] == run.metrics["resumed_at_step"]


# -- the admin pages: reviews -> a run -> the comparison -> production -> roll back ----------


def test_an_admin_trains_compares_promotes_and_rolls_back_on_the_pages(app, admin_client, parent):
    from srcflask.extensions import db
    from srcflask.models import AuditEvent, TrainingRun, TrainingStatus
    from srcflask.registry import service as registry
    from srcflask.registry import training

    reviewed_documents(app, 5)
    page = admin_client.get("/admin/training").get_data(as_text=True)
    assert 'data-usable="5"' in page and "at least 20 are needed, so 15 more" in page
    refused = admin_client.post("/admin/training", data={"parent": "1", "name": "x"})
    assert refused.status_code == 422
    assert "needs at least 20 accepted or edited reviews; there are 5" in refused.get_data(
        as_text=True
    )

    reviewed_documents(app, 20)
    with app.app_context():
        base = registry.find_version(parent)
        registry.set_alias(base, "production", actor=None)
        base_id = base.id
    for bad, message in [
        ({"name": "Bad Name!"}, "Use a-z, 0-9"),
        ({"epochs": "0"}, "Number must be between 1 and 20"),
        ({"learning_rate": "lots"}, "Not a valid float value"),
        ({"learning_rate": "nan"}, "Give a number, such as 0.0002."),
        ({"parent": "999"}, "Not a valid choice"),
    ]:
        data = {
            "parent": str(base_id),
            "name": "tiny-tuned",
            "epochs": "4",
            "learning_rate": "0.01",
        }
        answer = admin_client.post("/admin/training", data=data | bad)
        assert answer.status_code == 422 and message in answer.get_data(as_text=True), bad
    started = admin_client.post(
        "/admin/training",
        data={"parent": str(base_id), "name": "tiny-tuned", "epochs": "4", "learning_rate": "0.01"},
    )
    assert started.status_code == 303
    run_url = started.location
    assert app.extensions["srcflask.jobs"].training  # handed to the runner
    page = admin_client.get(run_url).get_data(as_text=True)
    assert "data-follow=" in page and "Queued: waiting for the runner." in page
    progress = admin_client.get(run_url + "/progress").json
    assert progress == {
        "status": "queued",
        "step": 0,
        "total_steps": progress["total_steps"],
        "percent": 0,
        "loss": None,
        "finished": False,
    }

    with app.app_context():
        assert training.run_pending() == 1
        run = db.session.scalar(db.select(TrainingRun))
        assert run.status is TrainingStatus.DONE
        tuned_label, tuned_id = run.result.label, run.result.id
    page = admin_client.get(run_url).get_data(as_text=True)
    assert "data-follow=" not in page
    assert 'data-compare="parent"' in page and 'data-compare="version"' in page
    assert f"Make {tuned_label} production" in page
    assert "We will meet again next spring." in page  # the editor's text beside the models'

    admin_client.post(f"/admin/models/{tuned_id}/alias", data={"alias": "production"})
    models = admin_client.get("/admin/models").get_data(as_text=True)
    assert f'data-rollback="{parent}"' in models
    assert (
        f'data-lineage="{tuned_label}"' in models and f"Fine-tuned from <strong>{parent}" in models
    )

    rolled = admin_client.post("/admin/models/rollback")
    assert rolled.status_code == 303
    with app.app_context():
        assert registry.production_version().label == parent
        actions = [e.action for e in AuditEvent.query.order_by(AuditEvent.id)]
        assert actions[-2:] == ["model.alias", "model.rollback"] and "model.train" in actions
    audit = admin_client.get("/admin/audit").get_data(as_text=True)
    assert f"rolled the production alias back to {parent}" in audit


def test_with_celery_a_run_goes_to_the_training_queue_only(app_factory, monkeypatch):
    from srcflask import jobs
    from srcflask.jobs import tasks

    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL="memory://", TRAINING_QUEUE="gpu-box")
    sent = []
    monkeypatch.setattr(
        tasks.train_model, "apply_async", lambda args, queue: sent.append((args, queue))
    )
    monkeypatch.setattr(tasks.generate_machine_texts, "delay", lambda job_id: sent.append(job_id))
    with app.app_context():
        jobs.submit([7], "training")
        jobs.submit([8])

    assert sent == [((7,), "gpu-box"), 8]


def test_a_celery_workers_janitor_resends_queued_runs_and_takes_back_dead_ones(
    app_factory, monkeypatch
):
    from srcflask.extensions import db
    from srcflask.jobs import celery as celery_runner
    from srcflask.jobs import tasks
    from srcflask.models import TrainingRun, TrainingStatus

    from .factories import ModelVersionFactory

    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL="memory://")
    with app.app_context():
        version = ModelVersionFactory()
        queued = TrainingRun(parent=version, name="a", created_by_label="x")
        orphan = TrainingRun(
            parent=version,
            name="b",
            created_by_label="x",
            status=TrainingStatus.RUNNING,
            claimed_by=f"{__import__('socket').gethostname()}:999999999:gone",
        )
        db.session.add_all([queued, orphan])
        db.session.commit()
        ids = (queued.id, orphan.id)
    sent = []
    monkeypatch.setattr(
        tasks.train_model, "apply_async", lambda args, queue: sent.append((args[0], queue))
    )
    janitor = celery_runner.Janitor(app)

    janitor._sweep_training(everything=False)  # the dead worker's run is sent again at once
    assert sent == [(ids[1], "training")]
    janitor._sweep_training(everything=True)  # after (re)connecting: every queued run
    assert sorted(sent[1:]) == [(ids[0], "training"), (ids[1], "training")]
    with app.app_context():
        assert db.session.get(TrainingRun, ids[1]).status is TrainingStatus.QUEUED


def _orphan(app, **fields) -> int:
    """A run left running by a process that no longer exists."""
    import socket

    from srcflask.extensions import db
    from srcflask.models import TrainingRun, TrainingStatus

    from .factories import ModelVersionFactory

    with app.app_context():
        run = TrainingRun(
            parent=ModelVersionFactory(),
            name="cut-off",
            created_by_label="x",
            status=TrainingStatus.RUNNING,
            claimed_by=f"{socket.gethostname()}:999999999:gone",
            **fields,
        )
        db.session.add(run)
        db.session.commit()
        return run.id


def test_the_embedded_runner_resumes_a_run_cut_off_by_a_restart(app_factory, monkeypatch):
    import time

    from srcflask.registry import training

    app = app_factory(JOBS_MODE="local")
    run_id = _orphan(app)
    ran = []
    monkeypatch.setattr(training, "run", lambda run_id, on_progress=None: ran.append(run_id))
    runner = app.extensions["srcflask.jobs"]
    try:
        with app.app_context():
            runner._resume_training()  # what the generation thread does at every poll
        deadline = time.monotonic() + 10
        while not ran and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert ran == [run_id]


def test_a_run_cancelled_while_its_worker_was_gone_ends_cancelled(app):
    from srcflask.extensions import db
    from srcflask.models import TrainingRun, TrainingStatus
    from srcflask.registry import training

    run_id = _orphan(app, cancel_requested=True)
    with app.app_context():
        assert training.recover_stale() == []
        assert db.session.get(TrainingRun, run_id).status is TrainingStatus.CANCELLED
        assert training.queued_ids() == []
