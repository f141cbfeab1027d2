"""The database or the broker not answering: clear 503s, saves that never hang, jobs not lost.

Fast counterparts of tests/test_faults.py, which stops the real servers.
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from srcflask.extensions import db
from srcflask.jobs import celery as celery_runner
from srcflask.models import MachineText, MachineTextStatus, User

from .conftest import login_as
from .factories import DocumentFactory
from .production_support import free_port


@contextmanager
def database_down(app, times: int | None = None):
    """New database connections fail (all, or the next `times`), as while Postgres restarts."""
    with app.app_context():
        engine = db.engine
    error = engine.dialect.loaded_dbapi.OperationalError
    left = [times]

    def refuse(dialect, record, cargs, cparams):
        if left[0] is None or left[0] > 0:
            left[0] = None if left[0] is None else left[0] - 1
            raise error("connection refused: the database system is shutting down")

    engine.dispose()  # pooled connections would hide the outage
    event.listen(engine, "do_connect", refuse)
    try:
        yield
    finally:
        event.remove(engine, "do_connect", refuse)


def test_a_save_while_the_database_is_down_gets_a_503_page_and_works_after(app, sponsor):
    client = login_as(app.test_client(), sponsor)
    form = {"title": "Outage", "body": "Written while the database restarts", "editor_id": ""}

    with database_down(app):
        response = client.post("/sponsor/documents/new", data=form)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    page = response.get_data(as_text=True)
    assert "cannot reach its database" in page and "try again in 5 seconds" in page
    assert sponsor.name not in page  # drawn without loading the user
    assert client.post("/sponsor/documents/new", data=form).status_code == 303


def test_json_clients_get_a_json_503_while_the_database_is_down(app, sponsor):
    client = login_as(app.test_client(), sponsor)

    with database_down(app):
        response = client.get("/documents/1/machine-text", headers={"Accept": "application/json"})

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert response.json["error"]["code"] == "database_unavailable"
    assert response.json["error"]["retry_after"] == 5


@pytest.fixture
def hung_broker():
    """A port that accepts connections and never answers, like a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


@pytest.mark.parametrize("broker", ["down", "hung"])
def test_a_save_never_waits_long_for_a_broker_that_does_not_answer(
    app_factory, make_user, hung_broker, monkeypatch, broker
):
    monkeypatch.setattr(celery_runner, "BROKER_TIMEOUT_SECONDS", 0.5)
    url = hung_broker if broker == "hung" else f"redis://127.0.0.1:{free_port()}/0"
    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL=url)
    client = login_as(app.test_client(), make_user())
    sent: list[int] = []
    from srcflask.jobs.tasks import generate_machine_texts

    real_delay = generate_machine_texts.delay
    monkeypatch.setattr(
        generate_machine_texts, "delay", lambda job_id: sent.append(job_id) or real_delay(job_id)
    )

    answers = []
    save = threading.Thread(
        daemon=True,
        target=lambda: answers.append(
            client.post(
                "/sponsor/documents/new", data={"title": "T", "body": "Body", "editor_id": ""}
            )
        ),
    )
    save.start()
    save.join(timeout=60)  # without socket timeouts a hung broker holds the save forever

    assert answers and answers[0].status_code == 303
    with app.app_context():
        [row] = db.session.scalars(select(MachineText)).all()
        assert row.status is MachineTextStatus.QUEUED  # a worker sends it when it reconnects
    # Once one job could not be sent, the others of the same call are not tried.
    with app.app_context():
        app.extensions["srcflask.jobs"].submit([row.id, row.id, row.id])
    assert len(sent) == 2


def test_a_worker_that_reconnects_to_the_broker_resends_every_queued_job(
    app_factory, make_user, monkeypatch
):
    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        owner = db.session.get(User, make_user().id)
        job_id = DocumentFactory(owner=owner, machine_text__status="queued").revisions[0]
        job_id = job_id.machine_text.id
    sent: list[int] = []

    class Task:
        def delay(self, job_id: int) -> None:
            sent.append(job_id)

    monkeypatch.setattr("srcflask.jobs.tasks.task_for", lambda kind: Task())
    app.config["JOB_SWEEP_SECONDS"] = 3600  # no sweep but the first, unless woken
    janitor = celery_runner.Janitor(app)
    janitor.start()
    try:
        assert wait_for(lambda: sent == [job_id])  # at start, every queued job is sent
        sent.clear()
        [step] = [
            step
            for step in app.extensions["celery"].steps["consumer"]
            if step.__name__ == "ResendAfterConnecting"
        ]
        step(parent=None).start(consumer=None)  # what Celery does after each (re)connection
        assert wait_for(lambda: sent == [job_id])
    finally:
        janitor.stop()
        janitor.thread.join(timeout=10)


def test_a_task_that_meets_a_database_restart_runs_again(
    app_factory, make_user, tiny_models, monkeypatch
):
    from srcflask.jobs.tasks import generate_machine_texts
    from srcflask.registry import service as registry

    app = app_factory(JOBS_MODE="celery", CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        owner = db.session.get(User, make_user().id)
        job_id = DocumentFactory(owner=owner, machine_text__status="queued").revisions[0]
        job_id = job_id.machine_text.id
        db.session.remove()

    with database_down(app, times=1):
        generate_machine_texts.apply(args=[job_id])  # retried at once when run eagerly

    with app.app_context():
        row = db.session.get(MachineText, job_id)
        assert row.status is MachineTextStatus.DONE and row.attempts == 1


def wait_for(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
