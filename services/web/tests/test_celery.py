"""Distributed mode with a real Celery worker process and Redis (needs TEST_REDIS_URL)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.models import MachineText, MachineTextStatus, User
from srcflask.registry import service as registry

from .conftest import login_as
from .factories import DocumentFactory
from .production_support import CELERY_WORKER

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not os.environ.get("TEST_REDIS_URL"), reason="TEST_REDIS_URL is not set"),
]
WEB = Path(__file__).resolve().parent.parent


@pytest.fixture
def celery_app(app_factory, tiny_models):
    """An app in Celery mode on a queue of its own, with a tiny production model."""
    queue = f"srcflask-test-{uuid.uuid4().hex[:8]}"
    app = app_factory(
        JOBS_MODE="celery", CELERY_BROKER_URL=os.environ["TEST_REDIS_URL"], CELERY_QUEUE=queue
    )
    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
    return app


@pytest.fixture
def start_worker(celery_app):
    workers: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        config = celery_app.config
        env = os.environ | {
            "SRCFLASK_ENV": "development",
            "SRCFLASK_INSTANCE_PATH": celery_app.instance_path,
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "MODEL_STORE": config["MODEL_STORE"],
            "CELERY_BROKER_URL": config["CELERY_BROKER_URL"],
            "CELERY_QUEUE": config["CELERY_QUEUE"],
            "JOB_SWEEP_SECONDS": "1",
        }
        worker = subprocess.Popen(
            [sys.executable, "-m", *CELERY_WORKER],
            cwd=WEB,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()


def wait_for(predicate, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.25)
    return False


def status_of(app, machine_text_id: int) -> MachineText:
    with app.app_context():
        return db.session.get(MachineText, machine_text_id)


def test_a_celery_worker_writes_the_machine_text_of_a_save(celery_app, start_worker, sponsor):
    worker = start_worker()
    client = login_as(celery_app.test_client(), sponsor)

    response = client.post(
        "/sponsor/documents/new", data={"title": "Hello", "body": "From the web", "editor_id": ""}
    )

    assert response.status_code == 303
    url = response.location.replace("/sponsor/documents/", "/documents/") + "/machine-text"
    finished = wait_for(lambda: client.get(url).json["status"] == "done")
    if not finished:
        worker.terminate()
        pytest.fail(f"no machine text; worker said:\n{worker.communicate(timeout=20)[0]}")
    state = client.get(url).json
    assert state["model_version"] == "tiny:1" and state["attempts"] == 1


def test_a_worker_loads_the_production_model_as_it_starts(celery_app, start_worker):
    from srcflask.models.mlmodels import ModelLoad

    def loads() -> list[ModelLoad]:
        with celery_app.app_context():
            return db.session.scalars(select(ModelLoad)).all()

    worker = start_worker()  # no job is queued: it loads before anyone asks

    if not wait_for(lambda: any(load.seconds is not None for load in loads())):
        worker.terminate()
        pytest.fail(f"the worker loaded no model; it said:\n{worker.communicate(timeout=20)[0]}")
    [load] = loads()  # recorded where the web reads it, with how long it took
    assert load.worker.split(":")[1] == str(worker.pid) and load.seconds > 0


def test_a_repeated_message_is_written_once(celery_app, start_worker, sponsor):
    from srcflask.jobs.tasks import generate_machine_texts

    with celery_app.app_context():
        owner = db.session.get(User, sponsor.id)
        job = DocumentFactory(owner=owner, machine_text__status="queued").revisions[0]
        job_id = job.machine_text.id
        for _ in range(3):  # the same job sent three times
            generate_machine_texts.delay(job_id)
    start_worker()
    assert wait_for(lambda: status_of(celery_app, job_id).status is MachineTextStatus.DONE)
    time.sleep(2)  # let the repeats arrive
    row = status_of(celery_app, job_id)
    assert row.status is MachineTextStatus.DONE and row.attempts == 1


def test_a_new_worker_takes_back_the_job_of_a_dead_one(celery_app, start_worker, sponsor):
    with celery_app.app_context():
        owner = db.session.get(User, sponsor.id)
        document = DocumentFactory(
            owner=owner,
            machine_text__status="running",
            machine_text__claimed_by=f"{socket.gethostname()}:999999999:x",
            machine_text__attempts=1,
        )
        job_id = document.revisions[0].machine_text.id
    # No message is waiting for it: only the worker's sweep can find it.
    start_worker()
    assert wait_for(lambda: status_of(celery_app, job_id).status is MachineTextStatus.DONE)
    assert status_of(celery_app, job_id).attempts == 2
    with celery_app.app_context():
        assert db.session.scalar(select(MachineText.text).where(MachineText.id == job_id))
