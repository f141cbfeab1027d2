"""Faults in the production topology: a worker killed mid-batch, Postgres restarted while
sponsors save, Redis stopped. nginx -> gunicorn -> srcflask and a Celery worker run on
loopback as in test_production; the database is the judge of what was kept.

Needs nginx (Debian package), TEST_DATABASE_URL and TEST_REDIS_URL; the Postgres test
runs a private cluster (/usr/lib/postgresql/*/bin) and the Redis test a private
redis-server, so the shared servers are never stopped.
"""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis
import sqlalchemy as sa
from celery import Celery

from . import production_support
from .production_support import (
    PASSWORD,
    REQUIREMENTS,
    Topology,
    Visitor,
    sign_up_and_approve,
    wait_until,
)
from .tinymodels import SENTENCES

pytestmark = REQUIREMENTS
fresh_database = production_support.fresh_database
private_postgres = production_support.private_postgres
private_redis = production_support.private_redis

SPONSOR_EMAIL = "sam@example.org"


@pytest.fixture
def start_topology(tmp_path, tiny_models):
    """Start the whole topology on a database (and a Redis); print its logs at the end.

    Ask for it after the servers' fixtures, so its processes stop before the servers do.
    """
    made: list[Topology] = []

    def start(database_url: str, redis_url: str | None = None, **settings: str) -> Topology:
        topology = Topology(tmp_path, database_url, tiny_models["gpt2"], redis_url, **settings)
        made.append(topology)
        topology.prepare()
        topology.start()
        return topology

    yield start
    for topology in made:
        topology.stop()
        print(topology.logs())  # shown only when the test failed


class Database:
    """What the test reads from the database, on connections that survive a restart."""

    def __init__(self, url: str):
        self.engine = sa.create_engine(url, pool_pre_ping=True)

    def rows(self, sql: str, **params) -> list:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).all()

    def machine_texts(self) -> dict[int, sa.Row]:
        rows = self.rows(
            "SELECT id, status, attempts, claimed_by, progress_tokens, text, error, finished_at "
            "FROM machine_texts ORDER BY id"
        )
        return {row.id: row for row in rows}

    def statuses(self) -> set[str]:
        return {row.status for row in self.machine_texts().values()}

    def all_done(self) -> bool:
        return self.statuses() == {"done"}


@pytest.fixture
def database():
    made: list[Database] = []

    def connect(url: str) -> Database:
        made.append(Database(url))
        return made[-1]

    yield connect
    for each in made:
        each.engine.dispose()


def logged_in_sponsor(topology: Topology) -> tuple[Visitor, str]:
    """An approved sponsor, logged in through nginx, and the CSRF token of the new-document form."""
    sign_up_and_approve(topology, [("Sam Sponsor", SPONSOR_EMAIL, "sponsor")])
    sponsor = Visitor(topology.base)
    assert sponsor.login(SPONSOR_EMAIL, PASSWORD).url.endswith("/sponsor/documents")
    return sponsor, sponsor.form_token("/sponsor/documents/new")


def save_new_document(sponsor: Visitor, token: str, number: int):
    """Save a new document; the answer is not followed (303 to the document when saved)."""
    return sponsor.post(
        "/sponsor/documents/new",
        token,
        title=f"Note {number}",
        body=SENTENCES[number % len(SENTENCES)],
        editor_id="",
    )


def document_id(saved) -> int:
    """The id of the document a save redirected to."""
    return int(saved.headers["Location"].rsplit("/", 1)[1])


def save_several(sponsor: Visitor, token: str, first: int, count: int) -> None:
    for number in range(first, first + count):
        response = save_new_document(sponsor, token, number)
        assert response.status_code == 303, response.text


# -- 1. a worker killed in the middle of a batch --------------------------------------


def test_a_worker_killed_mid_batch_leaves_every_machine_text_written_exactly_once(
    fresh_database, database, start_topology
):
    topology = start_topology(fresh_database)
    db = database(fresh_database)
    sponsor, token = logged_in_sponsor(topology)
    save_several(sponsor, token, 0, 1)
    assert wait_until(db.all_done, 120), "the worker wrote no machine text"

    saved, interrupted, killed_pid = 1, [], None
    for _ in range(4):  # until the kill lands while a batch is generating
        topology.kill("worker", signal.SIGTERM)  # idle: stops cleanly
        save_several(sponsor, token, saved, 8)
        saved += 8
        topology.start_worker()  # finds 8 queued jobs and runs them as one batch
        generating = wait_until(
            lambda: db.rows(
                "SELECT 1 FROM machine_texts WHERE status = 'running' AND progress_tokens > 0"
            ),
            timeout=120,
            interval=0.02,
        )
        assert generating, "no batch started"
        killed_pid = topology.kill("worker", signal.SIGKILL)
        interrupted = [
            row.id
            for row in db.machine_texts().values()
            if row.status == "running" and f":{killed_pid}:" in (row.claimed_by or "")
        ]
        topology.start_worker()
        if interrupted:
            break
        assert wait_until(db.all_done, 120)
    assert interrupted, "the batch always finished before the kill"

    # A new worker takes back the jobs of the dead one, at once (its process is gone).
    assert wait_until(db.all_done, 120), db.machine_texts()
    done = db.machine_texts()
    assert len(done) == saved == db.rows("SELECT count(*) FROM revisions")[0][0]
    for job_id, row in done.items():
        assert row.text and row.error is None and row.claimed_by is None, row
        assert row.attempts == (2 if job_id in interrupted else 1), row

    # The dead worker's message comes back one day (visibility timeout): deliver every job
    # again now, then one new save behind them. Nothing already written is written again.
    broker = Celery(broker=topology.env["CELERY_BROKER_URL"])
    for job_id in done:
        broker.send_task("srcflask.generate_machine_texts", args=[job_id], queue=topology.queue)
    save_several(sponsor, token, saved, 1)
    queue = redis.Redis.from_url(topology.env["CELERY_BROKER_URL"])
    # One message at a time per worker: once the last is taken, all before it are finished.
    assert wait_until(lambda: db.all_done() and queue.llen(topology.queue) == 0, 120)
    again = db.machine_texts()
    for job_id, row in done.items():
        assert again[job_id] == row
    queue.close()
    broker.close()


# -- 2. Postgres restarted while sponsors save ----------------------------------------


def test_a_postgres_restart_during_saves_gives_503_or_success_and_nothing_half_written(
    private_postgres, database, start_topology
):
    topology = start_topology(private_postgres.url)
    db = database(private_postgres.url)
    sponsor, token = logged_in_sponsor(topology)
    reader = Visitor(topology.base)  # the same sponsor in a second tab, polling as pages do
    reader.http.cookies.update(sponsor.http.cookies)

    stop = threading.Event()
    answers: list = []  # every save's response, in order

    def keep_saving() -> None:
        for number in range(150):
            if stop.is_set():
                return
            answers.append(save_new_document(sponsor, token, number))
            time.sleep(0.1)

    saver = threading.Thread(target=keep_saving, name="sponsor", daemon=True)
    saver.start()
    try:
        assert wait_until(lambda: len(answers) >= 3, 60)
        private_postgres.stop()  # fast shutdown: every open session is ended
        assert wait_until(lambda: any(r.status_code == 503 for r in answers), 60), answers
        down_json = reader.get("/documents/1/machine-text", headers={"Accept": "application/json"})
        private_postgres.start()
        after = len(answers)
        # The app reconnects by itself: saves work again without restarting anything.
        assert wait_until(lambda: sum(r.status_code == 303 for r in answers[after:]) >= 3, 60), (
            answers[after:]
        )
    finally:
        stop.set()
        saver.join(timeout=60)

    statuses = [response.status_code for response in answers]
    assert set(statuses) <= {303, 503}, statuses  # no 500, no 502/504 from nginx
    for response in answers:
        if response.status_code == 503:
            assert response.headers["Retry-After"].isdigit()
            assert "database" in response.text and "try again" in response.text.lower()
    assert down_json.status_code == 503, down_json.text
    assert down_json.json()["error"]["code"] == "database_unavailable"
    assert down_json.headers["Retry-After"].isdigit()

    # Nothing half-written: every document has its revisions, every revision its machine text.
    saved_ids = {document_id(r) for r in answers if r.is_redirect}
    documents = {row.id for row in db.rows("SELECT id FROM documents")}
    assert saved_ids <= documents
    assert len(documents) <= len(answers)
    assert not db.rows(
        "SELECT d.id FROM documents d LEFT JOIN revisions r ON r.document_id = d.id "
        "WHERE r.id IS NULL"
    )
    assert not db.rows(
        "SELECT r.id FROM revisions r LEFT JOIN machine_texts m ON m.revision_id = r.id "
        "WHERE m.id IS NULL"
    )
    assert not db.rows(
        "SELECT d.id FROM documents d JOIN revisions r ON r.document_id = d.id "
        "WHERE d.title <> r.title OR d.body <> r.body"
    )
    # And the worker recovered too: every machine text is written, the ones that were
    # running when the connection was cut included (taken back once their claim is stale,
    # never failed for a database outage).
    assert wait_until(lambda: db.statuses() <= {"done", "superseded"}, 150), db.machine_texts()
    by_document = dict(
        db.rows(
            "SELECT r.document_id, m.status FROM machine_texts m "
            "JOIN revisions r ON r.id = m.revision_id"
        )
    )
    saved_after = {document_id(r) for r in answers[after:] if r.is_redirect}
    assert {by_document[i] for i in saved_after} == {"done"}
    assert all(row.error for row in db.machine_texts().values() if row.status == "failed")


# -- 3. Redis stopped --------------------------------------------------------------------


def test_saves_succeed_while_redis_is_stopped_and_their_machine_text_follows_its_return(
    fresh_database, private_redis, database, start_topology
):
    topology = start_topology(fresh_database, private_redis.url)
    db = database(fresh_database)
    sponsor, token = logged_in_sponsor(topology)
    save_several(sponsor, token, 0, 1)
    assert wait_until(db.all_done, 120), "the worker wrote no machine text"

    private_redis.stop()
    ready = Visitor(topology.base).get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["broker"] != "ok"
    save_several(sponsor, token, 1, 3)
    # Their jobs wait in the database: saved, unclaimed, unwritten.
    waiting = [row for row in db.machine_texts().values() if row.status != "done"]
    assert len(waiting) == 3 and not any(row.claimed_by or row.text for row in waiting), waiting

    private_redis.start()  # empty: the messages of those saves were never sent
    assert wait_until(db.all_done, 120), db.machine_texts()
    for row in db.machine_texts().values():
        assert row.text and row.attempts == 1, row
    assert wait_until(lambda: Visitor(topology.base).get("/readyz").status_code == 200, 60)
