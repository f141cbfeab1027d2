"""The whole flow in a real browser, with the real default model writing the machine text.

Chromium (Debian's `chromium` package) driven by Python Playwright; the app
runs as `flask run` in a subprocess with the in-process generation runner.
Screenshots of every step go to tests/artifacts/browser/ (kept out of git).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srcflask.ml.continuation import ends_cleanly, judge
from srcflask.ml.quality import load_documents

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WEB = Path(__file__).resolve().parent.parent
SHOTS = Path(__file__).resolve().parent / "artifacts" / "browser"
ADMIN_EMAIL, ADMIN_PASSWORD = "root@example.org", "a long admin passphrase"
PASSWORD = "violet rivers run deep"
# A realistic document from the quality benchmark: minutes that stop at "Three options are on
# the table:", so the machine text must carry on with the options.
_BENCH_DOCUMENT = next(
    d for d in load_documents(WEB / "bench" / "documents.jsonl") if d.id == "garden-board-minutes"
)
DOCUMENT_TITLE = "Garden board minutes"
DOCUMENT_BODY = _BENCH_DOCUMENT.body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """srcflask on a free loopback port, migrated, with the default model and an admin."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium; make browser-deps)")
    pytest.importorskip("playwright")
    instance = tmp_path_factory.mktemp("browser-instance")
    cache = os.environ.get("SRCFLASK_TEST_MODEL_CACHE") or str(Path.home() / ".cache/srcflask")
    env = os.environ | {
        "SRCFLASK_ENV": "development",
        "SRCFLASK_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'browser.sqlite3'}",
        "MODEL_CACHE": cache,
        "JOBS_MODE": "local",
        "JOB_POLL_SECONDS": "1",
        "SRCFLASK_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    env.pop("CELERY_BROKER_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "srcflask"]
    for command in (
        ["db", "upgrade"],
        ["models", "pull-default"],
        ["create-admin", "--email", ADMIN_EMAIL, "--name", "Root Admin"],
    ):
        subprocess.run(flask + command, cwd=WEB, env=env, check=True, capture_output=True)
    port = free_port()
    process = subprocess.Popen(
        [*flask, "run", "--host", "127.0.0.1", "--port", str(port)],
        cwd=WEB,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail(f"the server did not start:\n{process.communicate()[0]}")
    yield base
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


class Person:
    """One user in a browser context of their own (cookies are not shared)."""

    def __init__(self, browser, base: str, name: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.base, self.name = base, name
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(str(error)))

    def _console(self, message) -> None:
        if message.type == "error" and "status of 4" not in message.text:
            self.problems.append(message.text)

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def login(self, email: str, password: str) -> None:
        self.go("/auth/login")
        self.page.fill("#email", email)
        self.page.fill("#password", password)
        self.page.click("form button[type=submit]")

    def signup(self, name: str, email: str, role: str) -> None:
        self.go("/auth/signup")
        self.page.fill("#name", name)
        self.page.fill("#email", email)
        self.page.select_option("#role", role)
        self.page.fill("#password", PASSWORD)
        self.page.fill("#confirm_password", PASSWORD)


def test_sign_up_approve_write_generate_review_in_chromium(server, browser):
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    editor, sponsor, admin = (Person(browser, server, n) for n in ("editor", "sponsor", "admin"))

    # 1. An editor and a sponsor sign up and wait for approval.
    editor.signup("Erin Editor", "erin@example.org", "editor")
    editor.shot("01-editor-signup")
    editor.page.click("form button[type=submit]")
    sponsor.signup("Sam Sponsor", "sam@example.org", "sponsor")
    sponsor.page.click("form button[type=submit]")
    sponsor.login("sam@example.org", PASSWORD)
    assert "Your account is pending" in sponsor.page.inner_text("main")
    sponsor.shot("02-sponsor-pending")

    # 2. The admin approves both, one click each.
    admin.login(ADMIN_EMAIL, ADMIN_PASSWORD)
    admin.go("/admin/users?status=pending")
    admin.shot("03-admin-pending-users")
    for name in ("Erin Editor", "Sam Sponsor"):
        row = admin.page.locator("tr", has_text=name)
        row.get_by_role("button", name="Approve").click()
        assert f"{name} is approved" in admin.page.inner_text(".flashes")
    admin.go("/admin/users?status=approved")
    admin.shot("04-admin-approved")

    # 3. The sponsor writes a document, assigns the editor and saves.
    sponsor.go("/")
    assert sponsor.page.url.endswith("/sponsor/documents")
    sponsor.page.click("text=New document")
    sponsor.page.fill("#title", DOCUMENT_TITLE)
    sponsor.page.fill("#body", DOCUMENT_BODY)
    sponsor.page.select_option("#editor_id", label="Erin Editor (erin@example.org)")
    sponsor.shot("05-sponsor-new-document")
    sponsor.page.click("text=Save and write machine text")
    page = sponsor.page
    assert "/sponsor/documents/" in page.url
    document_url = page.url
    assert page.locator("[data-machine-text]").get_attribute("data-status") in ("queued", "running")
    sponsor.shot("06-sponsor-saved-machine-text-pending")

    # 4. The machine text appears by itself: no reload (the marker survives).
    page.evaluate("window.__noReload = true")
    # The real default model on a busy 2-core machine: a generous deadline, not a timing.
    page.locator('[data-when="done"]').wait_for(state="visible", timeout=300_000)
    assert page.evaluate("window.__noReload") is True
    machine_text = page.inner_text('[data-field="text"]').strip()
    assert len(machine_text.split()) >= 8, machine_text
    # It continues the minutes instead of answering them, and ends at a sentence end.
    assert judge(machine_text).continues, (judge(machine_text), machine_text)
    assert ends_cleanly(machine_text), machine_text
    (SHOTS / "07-machine-text.txt").write_text(machine_text)
    sponsor.shot("07-sponsor-machine-text-ready")

    # 5. The editor reviews it beside the document, edits the pre-filled text, saves.
    editor.login("erin@example.org", PASSWORD)
    assert editor.page.url.endswith("/editor/documents")
    assert DOCUMENT_TITLE in editor.page.inner_text("table")
    editor.shot("08-editor-documents")
    editor.page.click(f"text={DOCUMENT_TITLE}")
    box = editor.page.locator("[data-review-text]")
    assert box.input_value().strip() == machine_text
    editor.shot("09-editor-review-side-by-side")
    edited = box.input_value().strip() + " The editor checked this."
    box.fill(edited)
    editor.page.click("button[value=edit]")
    assert "Your edit is now part of the document (revision 2)" in editor.page.inner_text(
        ".flashes"
    )
    editor.shot("10-editor-after-saving-edit")

    # 6. The sponsor sees the editor's revision.
    sponsor.page.goto(document_url)
    body = sponsor.page.inner_text(".document-text")
    assert body.startswith(DOCUMENT_BODY) and body.endswith("The editor checked this.")
    history = sponsor.page.inner_text(".history")
    assert "Edited machine text" in history and "Erin Editor" in history
    sponsor.shot("11-sponsor-sees-edited-revision")
    sponsor.page.click("text=See changes")
    assert "The editor checked this." in sponsor.page.inner_text(".diff")
    sponsor.shot("12-sponsor-revision-diff")

    for person in (editor, sponsor, admin):
        assert person.problems == [], f"{person.name}'s browser reported: {person.problems}"
