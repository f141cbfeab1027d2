"""Generation jobs: claims, batching, duplicate delivery, recovery, the runners."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.ml.settings import DEFAULT_PRESET, PRESETS
from srcflask.models import MachineText, MachineTextStatus, User
from srcflask.models.types import utcnow

from . import fakes
from .conftest import login_as
from .factories import DocumentFactory
from .production_support import wait_until


@pytest.fixture
def queue(app, sponsor):
    """Make documents whose machine texts wait in the queue; return their machine-text ids."""

    def make(count: int, **machine_text) -> list[int]:
        with app.app_context():
            owner = db.session.get(User, sponsor.id)
            documents = [
                DocumentFactory(
                    owner=owner,
                    title=f"Report {i}",
                    body=f"Part {i} of the plan.",
                    machine_text__status="queued",
                    **machine_text,
                )
                for i in range(count)
            ]
            return [d.revisions[0].machine_text.id for d in documents]

    return make


def rows(app, ids: list[int]) -> list[MachineText]:
    with app.app_context():
        return db.session.scalars(
            select(MachineText)
            .options(joinedload(MachineText.model_version))
            .where(MachineText.id.in_(ids))
            .order_by(MachineText.id)
        ).all()


def test_waiting_jobs_run_together_as_one_batch(app, queue, production_model, model_script):
    calls = model_script.calls
    ids = queue(5)

    with app.app_context():
        assert work.run_pending() == 5

    assert len(calls) == 1 and len(calls[0]) == 5
    assert calls[0][0] == "Report 0\n\nPart 0 of the plan."
    for row in rows(app, ids):
        assert row.status is MachineTextStatus.DONE and row.batch_size == 5
        assert row.model_version.label == production_model


def test_batches_are_capped_at_the_configured_size(app_factory, tiny_models, sponsor):
    app = app_factory(GENERATION_BATCH_SIZE=2)
    script = fakes.install(app)
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        owner = db.session.get(User, sponsor.id)
        for _ in range(5):
            DocumentFactory(owner=owner, machine_text__status="queued")
    calls = script.calls
    with app.app_context():
        assert work.run_pending() == 5
    # Two at a time: the first two together, then each other as a place frees up,
    # joining the running batch rather than waiting for it to end.
    assert len(calls[0]) == 2
    assert sum(len(c) for c in calls) == 5 and all(len(c) <= 2 for c in calls)
    with app.app_context():
        sizes = db.session.scalars(select(MachineText.batch_size)).all()
    assert sorted(sizes) and max(sizes) <= 2


def test_a_save_during_a_running_batch_joins_it(app, queue, production_model, model_script):
    first = queue(2)
    arrived: list[int] = []

    def save_while_it_runs(prompts, settings, progress):
        if not arrived:  # once: the batch has started, and a sponsor saves another document
            arrived.extend(queue(1))

    model_script.before = save_while_it_runs
    with app.app_context():
        ran = work.run_claimed(work.MACHINE_TEXTS, work.claim(work.MACHINE_TEXTS, first, 2))

    # It joined the running batch at a step boundary instead of waiting for a batch of its own.
    assert ran == 3
    assert [len(c) for c in model_script.calls] == [2, 1]
    done = rows(app, [*first, *arrived])
    assert [row.status for row in done] == [MachineTextStatus.DONE] * 3
    assert done[2].batch_size == 3 and done[2].text


def test_a_running_batch_looks_for_jobs_queued_here_at_its_next_step(app):
    progress = work._ProgressWriter(work.MACHINE_TEXTS, interval=60)
    work.queued_here.clear()
    assert progress.may_claim()  # the first look
    assert not progress.may_claim()  # then once a minute...
    work.queued_here.set()  # ...unless a save in this process queued a job
    assert progress.may_claim()
    assert not work.queued_here.is_set()
    assert not progress.may_claim()


def test_the_local_runner_tells_running_batches_of_a_new_job(app):
    from srcflask.jobs.local import LocalRunner

    runner = LocalRunner(app)
    work.queued_here.clear()
    with mock.patch.object(runner, "start"):
        runner.submit([1])
        assert work.queued_here.is_set()
        work.queued_here.clear()
        with mock.patch.object(runner, "_start_training"):
            runner.submit([2], kind="training")  # fine-tuning runs never join a batch
        assert not work.queued_here.is_set()


def test_the_local_runner_generates_at_a_lower_priority_than_requests(app):
    from srcflask.jobs.local import LocalRunner

    def nice_of(thread_id: int) -> int:
        stat = Path(f"/proc/self/task/{thread_id}/stat").read_text()
        return int(stat[stat.rindex(")") + 2 :].split()[16])

    if not Path("/proc/self/task").is_dir():
        pytest.skip("thread priorities are read from Linux's /proc")
    runner = LocalRunner(app)
    with (
        mock.patch("srcflask.registry.loads.preload_production"),
        mock.patch.object(work, "run_pending", return_value=0),
    ):
        runner.start()
        try:
            thread = runner._thread
            deadline = time.monotonic() + 10
            while nice_of(thread.native_id) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert nice_of(thread.native_id) == app.config["WORKER_NICE"] == 10
            assert nice_of(threading.get_native_id()) == 0  # this thread, as a request's
        finally:
            runner.stop()


def test_a_job_can_be_claimed_only_once(app, queue):
    [job] = queue(1)
    with app.app_context():
        with mock.patch.object(work, "worker_id", return_value="host-a:1:aaaa"):
            first = work.claim(work.MACHINE_TEXTS, [job], limit=8)
        with mock.patch.object(work, "worker_id", return_value="host-b:2:bbbb"):
            second = work.claim(work.MACHINE_TEXTS, [job], limit=8)
    assert (first, second) == ([job], [])
    [row] = rows(app, [job])
    assert row.status is MachineTextStatus.RUNNING and row.claimed_by == "host-a:1:aaaa"
    assert row.attempts == 1


def test_a_job_delivered_twice_is_written_once(app, queue, production_model, model_script):
    from srcflask.jobs.tasks import generate_machine_texts

    calls = model_script.calls
    [job] = queue(1)
    with app.app_context():
        assert generate_machine_texts.run(job) == 1
        first = db.session.get(MachineText, job)
        text, finished = first.text, first.finished_at
        assert generate_machine_texts.run(job) == 0  # the repeat finds nothing to claim
    [row] = rows(app, [job])
    assert len(calls) == 1
    assert (row.text, row.finished_at, row.attempts) == (text, finished, 1)


def test_a_worker_that_lost_its_claim_does_not_write(app, queue, production_model):
    [job] = queue(1)
    with app.app_context():
        with mock.patch.object(work, "worker_id", return_value="host-a:1:aaaa"):
            work.claim(work.MACHINE_TEXTS, [job], limit=1)
        # host-a went quiet; its job was queued again and host-b took it.
        row = db.session.get(MachineText, job)
        row.status, row.claimed_by = MachineTextStatus.QUEUED, None
        db.session.commit()
        with mock.patch.object(work, "worker_id", return_value="host-b:2:bbbb"):
            work.claim(work.MACHINE_TEXTS, [job], limit=1)
        with mock.patch.object(work, "worker_id", return_value="host-a:1:aaaa"):
            result = mock.Mock(
                text="stale text",
                prompt_tokens=1,
                generated_tokens=1,
                truncated=False,
                settings={},
                alternatives=("another stale text",),
            )
            assert work._write_result(work.MACHINE_TEXTS, job, result) is False
            db.session.commit()
    [row] = rows(app, [job])
    assert row.status is MachineTextStatus.RUNNING and row.claimed_by == "host-b:2:bbbb"
    assert row.text is None


def make_running(app, job: int, *, claimed_by: str, heartbeat_age: float, attempts: int = 1):
    with app.app_context():
        row = db.session.get(MachineText, job)
        row.status = MachineTextStatus.RUNNING
        row.claimed_by = claimed_by
        row.heartbeat_at = utcnow() - timedelta(seconds=heartbeat_age)
        row.attempts = attempts
        db.session.commit()


def test_jobs_of_dead_workers_are_queued_again(app, queue):
    import socket

    dead_here, fresh_elsewhere, stale_elsewhere, hopeless = queue(4)
    host = socket.gethostname()
    make_running(app, dead_here, claimed_by=f"{host}:999999999:dead", heartbeat_age=1)
    make_running(app, fresh_elsewhere, claimed_by="other-host:12:beef", heartbeat_age=1)
    make_running(app, stale_elsewhere, claimed_by="other-host:13:cafe", heartbeat_age=600)
    make_running(app, hopeless, claimed_by="other-host:14:dead", heartbeat_age=600, attempts=3)

    with app.app_context():
        requeued = work.recover_stale()

    assert sorted(requeued) == sorted([dead_here, stale_elsewhere])
    by_id = {
        row.id: row for row in rows(app, [dead_here, fresh_elsewhere, stale_elsewhere, hopeless])
    }
    assert by_id[dead_here].status is MachineTextStatus.QUEUED
    assert by_id[stale_elsewhere].status is MachineTextStatus.QUEUED
    assert by_id[fresh_elsewhere].status is MachineTextStatus.RUNNING
    assert by_id[hopeless].status is MachineTextStatus.FAILED
    assert "Gave up after 3 attempts" in by_id[hopeless].error


def test_progress_is_written_while_the_model_runs(app, queue, production_model, model_script):
    seen: list[int] = []

    def report_progress(prompts, settings, progress):
        progress(settings.max_new_tokens, settings.max_new_tokens)
        seen.extend(db.session.scalars(select(MachineText.progress_tokens)).all())

    model_script.before = report_progress
    queue(2)
    with app.app_context():
        work.run_pending()
    cap = PRESETS[DEFAULT_PRESET].max_new_tokens
    assert seen == [cap, cap]


def test_the_heartbeat_beats_during_a_long_batch(app_factory, queue, monkeypatch):
    app = app_factory(JOB_HEARTBEAT_SECONDS=0.05)
    [job] = queue(1)
    with app.app_context():
        work.claim(work.MACHINE_TEXTS, [job], limit=1)
        before = db.session.get(MachineText, job).heartbeat_at
        with work._Heartbeat(app, work.MACHINE_TEXTS, [job], work.worker_id()):
            time.sleep(0.3)
        db.session.expire_all()
        after = db.session.get(MachineText, job).heartbeat_at
    assert after > before


def test_the_local_runner_writes_machine_text_in_the_background(app_factory, tiny_models, sponsor):
    app = app_factory(JOBS_MODE="local", JOB_POLL_SECONDS=0.2)
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
    client = login_as(app.test_client(), sponsor)
    runner = app.extensions["srcflask.jobs"]
    try:
        response = client.post(
            "/sponsor/documents/new", data={"title": "Hello", "body": "World", "editor_id": ""}
        )
        document_id = int(response.location.rsplit("/", 1)[1])
        url = f"/documents/{document_id}/machine-text"
        assert wait_until(lambda: client.get(url).json["status"] == "done")
        assert runner.running
    finally:
        runner.stop()


def test_the_local_runner_picks_up_what_a_previous_process_left(app_factory, tiny_models, sponsor):
    import socket

    app = app_factory(JOBS_MODE="local", JOB_POLL_SECONDS=0.2)
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        owner = db.session.get(User, sponsor.id)
        left_queued = DocumentFactory(owner=owner, machine_text__status="queued")
        left_running = DocumentFactory(owner=owner, machine_text__status="queued")
        ids = [left_queued.revisions[0].machine_text.id, left_running.revisions[0].machine_text.id]
    make_running(app, ids[1], claimed_by=f"{socket.gethostname()}:999999999:gone", heartbeat_age=2)
    runner = app.extensions["srcflask.jobs"]
    try:
        runner.start()  # as at the first request after a restart
        assert wait_until(lambda: all(r.status is MachineTextStatus.DONE for r in rows(app, ids)))
    finally:
        runner.stop()
    assert [r.attempts for r in rows(app, ids)] == [1, 2]


def test_a_broken_runner_never_breaks_a_save(app, sponsor_client, monkeypatch):
    def explode(ids):
        raise ConnectionError("broker is down")

    monkeypatch.setattr(app.extensions["srcflask.jobs"], "submit", explode)
    response = sponsor_client.post(
        "/sponsor/documents/new", data={"title": "Still saved", "body": "x", "editor_id": ""}
    )
    assert response.status_code == 303
    with app.app_context():
        [row] = db.session.scalars(select(MachineText)).all()
        assert row.status is MachineTextStatus.QUEUED  # a worker's sweep will find it


def test_flask_jobs_commands(app, runner, queue, production_model):
    queue(3)
    assert "queued: 3" in runner.invoke(args=["jobs", "status"]).output
    assert "Ran 3 job(s)." in runner.invoke(args=["jobs", "run"]).output
    assert "done: 3" in runner.invoke(args=["jobs", "status"]).output


# -- loading the model ---------------------------------------------------------------


def import_production(app, tiny_models) -> int:
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
        return version.id


def test_the_local_runner_loads_the_model_as_it_starts_and_pages_say_so(
    app_factory, tiny_models, sponsor, monkeypatch
):
    import threading

    from srcflask.ml import cache
    from srcflask.models.mlmodels import ModelLoad

    app = app_factory(JOBS_MODE="local", JOB_POLL_SECONDS=0.2)
    import_production(app, tiny_models)
    started, release = threading.Event(), threading.Event()
    real = cache.TextGenerator

    def held_load(*args, **kwargs):  # a load that takes until the test lets it finish
        started.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache, "TextGenerator", held_load)
    client = login_as(app.test_client(), sponsor)  # the first request starts the runner
    runner = app.extensions["srcflask.jobs"]
    try:
        assert started.wait(10), "the runner did not load the model as it started"
        # Requests do not wait for the load: a save goes through, its text queued.
        response = client.post(
            "/sponsor/documents/new", data={"title": "Hello", "body": "World", "editor_id": ""}
        )
        document_id = int(response.location.rsplit("/", 1)[1])
        url = f"/documents/{document_id}/machine-text"
        state = client.get(url).json
        assert state["status"] == "queued"
        assert state["loading_model"]["model"] == "tiny:1"
        assert state["loading_model"]["seconds_left"] >= 1
        page = client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
        assert "<strong>Loading the model</strong>" in page and "seconds left" in page

        release.set()
        assert wait_until(lambda: client.get(url).json["status"] == "done")
        assert client.get(url).json["loading_model"] is None
        page = client.get(f"/sponsor/documents/{document_id}").get_data(as_text=True)
        assert 'data-field="loading" hidden' in page
    finally:
        release.set()
        runner.stop()
    with app.app_context():
        [load] = db.session.scalars(select(ModelLoad)).all()  # loaded once, for both
        assert load.finished_at is not None and load.seconds > 0


def test_a_load_is_estimated_from_the_last_ones_else_from_the_model_size(
    app, tiny_models, monkeypatch
):
    import socket

    from srcflask.models import ModelVersion
    from srcflask.models.mlmodels import ModelLoad
    from srcflask.registry import loads

    version_id = import_production(app, tiny_models)
    me = work.worker_id()
    with app.app_context():
        version = db.session.get(ModelVersion, version_id)
        assert loads.loading(version) is None
        monkeypatch.setattr(loads, "LOAD_BYTES_PER_SECOND", version.size_bytes / 40)
        assert loads.expected_seconds(version) == pytest.approx(40)

        now = utcnow()
        db.session.add_all(
            [
                ModelLoad(version_id=version_id, worker=me, started_at=now, seconds=20.0),
                ModelLoad(version_id=version_id, worker=me, started_at=now, seconds=24.0),
                # Going on for 8 seconds now, in this process.
                ModelLoad(version_id=version_id, worker=me, started_at=now - timedelta(seconds=8)),
                # Cut off: its process is gone.
                ModelLoad(
                    version_id=version_id,
                    worker=f"{socket.gethostname()}:999999999:gone",
                    started_at=now - timedelta(seconds=1),
                ),
            ]
        )
        db.session.commit()

        assert loads.expected_seconds(version) == pytest.approx(22)
        loading = loads.loading(version)
        assert loading.version_label == "tiny:1" and loading.seconds_left == 14
        assert loads.loading(version, worker="elsewhere:1:x") is None  # not that worker's load


def test_a_failed_load_is_forgotten_and_only_the_last_loads_are_kept(app, tiny_models, monkeypatch):
    from srcflask.models.mlmodels import ModelLoad
    from srcflask.registry import loads

    version_id = import_production(app, tiny_models)
    monkeypatch.setattr(loads, "KEPT_LOADS", 2)
    with app.app_context():
        with pytest.raises(OSError), loads.recording(version_id):
            assert db.session.scalar(select(ModelLoad.seconds)) is None  # loading now
            raise OSError("no such file")
        assert db.session.scalars(select(ModelLoad)).all() == []
        for _ in range(3):
            with loads.recording(version_id):
                pass
        assert len(db.session.scalars(select(ModelLoad)).all()) == 2
