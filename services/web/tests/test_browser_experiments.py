"""Experiments in a real browser: an admin starts one through the confirm step, editors'
decisions come in, and the experiment page shows the verdict, the table and the chart,
at 1280 and 390 px. Screenshots go to tests/artifacts/browser/."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .test_browser import SHOTS, WEB, Person, running_server, tiny_model_instance

pytestmark = [pytest.mark.slow, pytest.mark.browser]

ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "a long admin passphrase"

# Run in the instance's environment once the experiment runs: documents of both arms,
# written by the model, and editors' decisions (the rival's text kept more often).
DECISIONS = """
import time
from sqlalchemy import func, select
from srcflask import create_app
from srcflask.documents import service as documents
from srcflask.experiments import service as experiments
from srcflask.extensions import db
from srcflask.jobs import work
from srcflask.models import Decision, MachineText, Role, User, UserStatus

app = create_app()
with app.app_context():
    def person(email, role):
        user = User(email=email, name=email.split("@")[0].title(), role=role,
                    status=UserStatus.APPROVED)
        user.set_password("a long enough passphrase")
        db.session.add(user)
        db.session.commit()
        return user
    sponsor = person("sam@example.org", Role.SPONSOR)
    editor = person("eda@example.org", Role.EDITOR)
    ids = [documents.create_document(sponsor, f"Minutes {i}",
           f"The harbour committee met on Tuesday {i}. The pier is late, and the", editor.id).id
           for i in range(40)]
    # The server's runner writes some of them too: wait until every text is written.
    deadline = time.monotonic() + 300
    while db.session.scalar(select(func.count()).select_from(MachineText).where(
            MachineText.status.in_(["waiting", "queued", "running"]))):
        if not work.run_pending():
            time.sleep(0.5)
        db.session.expire_all()
        assert time.monotonic() < deadline, "the texts were not written in 5 minutes"
    experiment = experiments.running()
    for n, document_id in enumerate(ids):
        document = db.session.get(documents.Document, document_id)
        text = documents.latest_revision(document).machine_text
        rival = text.arm == "challenger"
        decision = Decision.ACCEPTED if (n % 3 != 0 if rival else n % 3 == 0) else Decision.REJECTED
        documents.review_machine_text(document, editor, decision)
    print(experiments.results(experiment).verdict.message)
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from .tinymodels import build_model

    rival = build_model("llama", tmp_path_factory.mktemp("rival") / "tiny-rival", seed=7)
    _, env = tiny_model_instance(
        tmp_path_factory,
        "experiments",
        model_name="tiny-garden",
        commands=(
            ["create-admin", "--email", ADMIN_EMAIL, "--name", "Root Admin"],
            ["models", "import", str(rival), "--name", "tiny-rival"],
        ),
        SRCFLASK_ADMIN_PASSWORD=ADMIN_PASSWORD,
    )
    for base in running_server(env):
        yield base, env


def test_an_admin_starts_an_experiment_and_reads_its_verdict(server, browser):
    base, env = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    admin = Person(browser, base, "admin")
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    admin.go("/admin/experiments")
    page = admin.page
    assert "No experiment has run yet." in page.inner_text("main")
    page.select_option("#challenger", label="tiny-rival:1")
    page.select_option("#preset", "greedy")
    page.fill("#share", "50")
    admin.shot("experiments-01-start")
    page.get_by_role("button", name="Start…").click()

    # The confirm step: nothing has started yet.
    assert "Start an experiment with tiny-rival:1?" in page.inner_text("h1")
    admin.shot("experiments-02-confirm")
    page.get_by_role("button", name="Yes, start it").click()
    page.wait_for_url("**/admin/experiments/*")
    assert "Keep collecting" in page.inner_text(".verdict")

    made = subprocess.run(
        [sys.executable, "-c", DECISIONS],
        cwd=WEB,
        env=env | {"JOBS_MODE": "manual"},  # the server runs its own runner
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    page.reload()
    verdict = page.inner_text(".verdict h2")
    assert verdict == made.stdout.strip().splitlines()[-1]
    reviews = [int(page.inner_text(f'[data-arm="{arm}"][data-field="reviews"]')) for arm in
               ("champion", "challenger")]  # fmt: skip
    assert sum(reviews) == 40 and min(reviews) > 0
    lines = page.locator("svg.chart polyline")
    assert lines.count() == 2
    admin.shot("experiments-03-results")

    admin.go("/admin/experiments")
    assert page.locator("tr[data-experiment]").count() == 1
    admin.shot("experiments-04-list")
    assert not admin.problems, admin.problems
    admin.context.close()
