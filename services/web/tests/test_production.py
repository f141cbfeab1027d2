"""The production topology without Docker: nginx -> gunicorn -> srcflask, a Celery worker,
Postgres (a fresh database) and Redis, all on loopback, started the way the containers
start them (boot.sh). A user journey goes through nginx; then every process is stopped
and started again, and everything must still be there.

Needs nginx (Debian package), TEST_DATABASE_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from . import production_support
from .production_support import (
    PASSWORD,
    REQUIREMENTS,
    Topology,
    Visitor,
    counts,
    sign_up_and_approve,
)

pytestmark = REQUIREMENTS
fresh_database = production_support.fresh_database
topology = production_support.topology


def test_production_topology_serves_the_flow_and_keeps_everything_across_a_restart(
    topology, fresh_database
):
    topology.start()
    try:
        journey(topology, fresh_database)
    except AssertionError:
        print(topology.logs())
        raise


def journey(topology: Topology, database_url: str) -> None:
    anonymous = Visitor(topology.base)
    ready = anonymous.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "production_model": "ok"}

    # Static files come from nginx, not from gunicorn.
    css = anonymous.get("/static/css/app.css")
    assert css.status_code == 200 and css.headers["X-Served-By"] == "nginx"
    assert "text/css" in css.headers["Content-Type"]
    assert anonymous.get("/static/../boot.sh").status_code in (400, 403, 404)
    # Pages come from the app through nginx, with its security headers.
    login_page = anonymous.get("/auth/login")
    assert "frame-ancestors 'none'" in login_page.headers["Content-Security-Policy"]
    assert login_page.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in login_page.headers or "nginx/" not in login_page.headers["Server"]

    # Two people sign up; the operator approves them.
    sign_up_and_approve(
        topology,
        [
            ("Sam Sponsor", "sam@example.org", "sponsor"),
            ("Erin Editor", "erin@example.org", "editor"),
        ],
    )

    # The sponsor writes a document; the Celery worker writes its machine text.
    sponsor = Visitor(topology.base)
    assert sponsor.login("sam@example.org", PASSWORD).url.endswith("/sponsor/documents")
    editor_id = re.search(
        r'<option value="(\d+)">Erin Editor', sponsor.get("/sponsor/documents/new").text
    ).group(1)
    saved = sponsor.post_form(
        "/sponsor/documents/new",
        title="Warehouse safety",
        body="Safety procedures for the warehouse loading dock",
        editor_id=editor_id,
    )
    document_id = int(re.search(r"/sponsor/documents/(\d+)$", saved.url).group(1))
    status_url = f"/documents/{document_id}/machine-text"
    deadline = time.monotonic() + 120
    while sponsor.get(status_url).json()["status"] != "done":
        assert time.monotonic() < deadline, f"no machine text:\n{topology.logs()}"
        time.sleep(0.5)
    machine_text = sponsor.get(status_url).json()
    assert machine_text["model_version"] == "tiny:1"

    editor = Visitor(topology.base)
    editor.login("erin@example.org", PASSWORD)
    review = editor.get(f"/editor/documents/{document_id}/review")
    assert review.status_code == 200 and "Warehouse safety" in review.text
    # Generation yields the CPU to pages: the worker runs at a lower priority than the web.
    worker, web = topology.processes["worker"].pid, topology.processes["web"].pid
    assert os.getpriority(os.PRIO_PROCESS, worker) == 10
    assert os.getpriority(os.PRIO_PROCESS, web) == 0
    gunicorn_log = (topology.folder / "web.log").read_text()
    assert "/static/" not in gunicorn_log and "/auth/login" in gunicorn_log
    before = counts(database_url)
    assert before["users"] == 3 and before["documents"] == 1 and before["machine_texts"] == 1

    # Stop everything, start it again: nothing is lost, sessions and data survive.
    topology.stop()
    topology.start()
    assert counts(database_url) == before
    assert Visitor(topology.base).get("/readyz").status_code == 200
    page = sponsor.get(f"/sponsor/documents/{document_id}")
    assert page.status_code == 200 and "Warehouse safety" in page.text
    again = sponsor.get(status_url).json()
    assert (again["status"], again["text"]) == ("done", machine_text["text"])
    fresh_login = Visitor(topology.base)
    assert fresh_login.login("erin@example.org", PASSWORD).url.endswith(
        "/editor/documents?review=needs-review"
    )


@pytest.fixture
def nginx_only_limits(tmp_path, fresh_database, tiny_models):
    """The topology with the app's own rate limits off, so that a 429 can only be nginx's."""
    topology = Topology(tmp_path, fresh_database, tiny_models["gpt2"], RATELIMIT_ENABLED="false")
    topology.prepare()
    topology.start()
    yield topology
    topology.stop()


def test_nginx_counts_sign_in_attempts_not_visits_of_the_sign_in_page(nginx_only_limits):
    base = nginx_only_limits.base
    # A whole office behind one address opens the page: nobody is turned away.
    visits = [Visitor(base).get("/auth/login").status_code for _ in range(60)]
    assert visits == [200] * 60
    # Attempts from one address are still limited: 30 a minute with a burst of 20.
    guesser = Visitor(base)
    token = guesser.form_token("/auth/login")
    started = time.monotonic()
    answers = [
        guesser.post("/auth/login", token, email="ops@example.org", password=f"guess {n}")
        for n in range(30)
    ]
    refilled = int((time.monotonic() - started) / 2)  # one attempt more every 2 seconds
    codes = [answer.status_code for answer in answers]
    assert codes[0] == 401 and 429 in codes, codes
    assert codes.count(401) <= 21 + refilled + 1, codes
    # With the app's limits off, the refusal is nginx's own page.
    assert "nginx" in answers[codes.index(429)].text
