"""The whole flow in a real browser, with the real default model writing the machine text.

Chromium (Debian's `chromium` package) driven by Python Playwright; the app
runs as `flask run` in a subprocess with the in-process generation runner.
Screenshots of every step go to tests/artifacts/browser/ (kept out of git).
"""

from __future__ import annotations

import os
import re
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
# A laptop and a phone: every screenshot is taken at both.
WIDTHS = (1280, 390)
# Long enough that the editor drop-down once made the document page 405 px wide at 390 px.
EDITOR_EMAIL = "erin.editor.for.the.larkfield.garden.board@example.org"
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
    yield from running_server(env)


def tiny_model_instance(
    tmp_path_factory,
    name: str,
    *,
    model_name: str,
    init_std: float | None = None,
    commands: tuple[list[str], ...] = (),
    **settings: str,
) -> tuple[Path, dict]:
    """An instance folder migrated, with a tiny model as production, for `running_server`.

    Skips without Chromium or Playwright. `settings` are environment variables on top
    of the defaults (in-process jobs, SQLite in the folder); `commands` are more
    `flask` commands to run once the model is in. Returns (folder, environment).
    """
    from .tinymodels import build_model

    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed (apt-get install chromium; make browser-deps)")
    pytest.importorskip("playwright")
    instance = tmp_path_factory.mktemp(f"{name}-instance")
    extra = {} if init_std is None else {"init_std": init_std}
    model = build_model("llama", instance / "tiny-model", seed=5, **extra)
    env = os.environ | {
        "SRCFLASK_ENV": "development",
        "SRCFLASK_INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / (name + '.sqlite3')}",
        "MODEL_CACHE": str(instance / "cache"),
        "JOBS_MODE": "local",
        "JOB_POLL_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    env |= settings
    env.pop("CELERY_BROKER_URL", None)
    flask = [sys.executable, "-m", "flask", "--app", "srcflask"]
    for command in (
        ["db", "upgrade"],
        ["models", "import", str(model), "--name", model_name, "--alias", "production"],
        *commands,
    ):
        subprocess.run(flask + command, cwd=WEB, env=env, check=True, capture_output=True)
    return instance, env


def running_server(env: dict):
    """`flask run` on a free loopback port with `env`; yields its base URL, then stops it."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "srcflask",
            "run",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=WEB,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


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
        """Screenshots at 1280 and 390 px; at neither may the page be wider than the screen."""
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
            page_width = self.page.evaluate("document.documentElement.scrollWidth")
            assert page_width <= width, f"{name} is {page_width} px wide at {width} px"
        self.page.set_viewport_size({"width": WIDTHS[0], "height": 900})

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


def assert_changed_words(area, removed: list[str], added: list[str]) -> None:
    """At each width the changed line in `area` shows these words struck out and added."""
    page = area.page
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        line = area.locator(".diff-changed").first
        assert line.is_visible()
        # What a screen reader says of each: the words, after "removed:" or "added:".
        said = [" ".join(d.inner_text().split()) for d in line.locator("del, ins").all()]
        assert said == [
            f"{kind}: {word}"
            for pair in zip(removed, added, strict=True)
            for kind, word in zip(("removed", "added"), pair, strict=True)
        ]
        struck = line.locator("del").first.evaluate("e => getComputedStyle(e).textDecorationLine")
        assert struck == "line-through"  # not told by colour alone
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


def test_sign_up_approve_write_generate_review_in_chromium(server, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("[0-9][0-9]-*"):  # this test's own, from an earlier run
        old.unlink()
    editor, sponsor, admin = (Person(browser, server, n) for n in ("editor", "sponsor", "admin"))

    # 1. An editor and a sponsor sign up and wait for approval.
    editor.signup("Erin Editor", EDITOR_EMAIL, "editor")
    editor.shot("01-editor-signup")
    editor.page.click("form button[type=submit]")
    sponsor.signup("Sam Sponsor", "sam@example.org", "sponsor")
    sponsor.page.click("form button[type=submit]")
    # Signed in at once, on the status page: no login form in between.
    assert sponsor.page.url.endswith("/auth/status")
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
    sponsor.page.select_option("#editor_id", label=f"Erin Editor ({EDITOR_EMAIL})")
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
    editor.go("/")  # still signed in since sign-up, and approved since
    assert editor.page.url.endswith("/editor/documents?review=needs-review")  # their work
    assert DOCUMENT_TITLE in editor.page.inner_text("table")
    assert "Needs review 1" in editor.page.inner_text("nav[aria-label='Review queue']")
    editor.shot("08-editor-documents")
    editor.page.click(f"text={DOCUMENT_TITLE}")
    box = editor.page.locator("[data-review-text]")
    assert box.input_value().strip() == machine_text
    # The machine text is shown once: in the edit box, not again in the panel.
    assert editor.page.locator('[data-field="text"]').count() == 0
    editor.shot("09-editor-review-side-by-side")
    edited = box.input_value().strip() + " The editor checked this."
    box.fill(edited)
    # Accept now says it adds the edit, and keeping part of the unedited text waits; pressing
    # Accept saves what the editor typed (it once appended the machine text instead).
    accept = editor.page.locator("[data-review-form] button[value=accept]")
    assert "Accept your edit" in accept.inner_text()
    assert editor.page.locator("[data-box-changed]").is_visible()
    keeps = editor.page.locator("[data-keep]")
    assert all(keeps.nth(i).is_disabled() for i in range(keeps.count()))
    editor.shot("09b-editor-changed-the-box")
    accept.click()
    decided = editor.page.inner_text("[data-decided]")
    assert "Accepted with edits: revision 2" in decided and "The editor checked this." in decided
    assert "No other document needs your review now." in decided
    editor.shot("10-editor-after-saving-edit")

    # 6. The sponsor sees the editor's revision.
    sponsor.page.goto(document_url)
    body = sponsor.page.inner_text(".document-text")
    assert body.startswith(DOCUMENT_BODY) and body.endswith("The editor checked this.")
    history = sponsor.page.inner_text(".history")
    assert "Edited machine text" in history and "Erin Editor" in history
    assert "Accepted with edits by Erin Editor" in history
    sponsor.shot("11-sponsor-sees-edited-revision")
    sponsor.page.click("text=See changes")
    assert "The editor checked this." in sponsor.page.inner_text(".diff")
    sponsor.shot("12-sponsor-revision-diff")

    # 6b. The editor's revision gets no machine text by itself (the queue empties); the
    # editor asks for more, then keeps part of it with a key. The page shows it sentence
    # by sentence by itself once it is written.
    editor.page.goto(document_url.replace("/sponsor/", "/editor/") + "/review")
    assert "No machine text for this revision" in editor.page.inner_text("[data-machine-text]")
    editor.page.click("[data-write-more]")
    # The box holds the text as the server wrote it (not filled in by script): the page
    # reloaded itself when the text was ready.
    editor.page.wait_for_selector("[data-review-text]:not(:empty)", timeout=300_000)
    second_text = editor.page.locator("[data-review-text]").input_value().strip()
    keeps = editor.page.locator("[data-keep]")
    assert "<kbd>A</kbd>" in editor.page.content()
    editor.shot("12b-editor-review-sentences")
    if keeps.count():  # a text of two sentences or more: keep the first with the key 1
        first_sentence = editor.page.inner_text("[data-sentence='1'] .sentence-text").strip()
        editor.page.locator("h1").click()  # keys count outside the edit box
        editor.page.keyboard.press("1")
        decided = editor.page.inner_text("[data-decided]")
        assert "Kept in part: revision 3" in decided and first_sentence in decided
    else:  # one sentence: keeping part of it is accepting it, with the key A
        editor.page.locator("h1").click()
        editor.page.keyboard.press("a")
        decided = editor.page.inner_text("[data-decided]")
        assert "Accepted: revision 3" in decided and second_text in decided
    editor.shot("12c-editor-after-a-key")

    # 7. Two tabs: the second save is refused, with its text kept and the differences shown.
    edit_url = document_url + "/edit"
    first_tab = sponsor.page
    second_tab = sponsor.context.new_page()
    first_tab.goto(edit_url)
    second_tab.goto(edit_url)
    second_tab.fill("#body", DOCUMENT_BODY + "\nc) Added in the second tab.")
    second_tab.click(".document-form button[type=submit]")
    first_tab.fill("#body", DOCUMENT_BODY + "\nd) Added in the first tab.")
    assert "characters" in first_tab.inner_text("[data-counter]")
    first_tab.click(".document-form button[type=submit]")
    assert "This document changed since you opened it" in first_tab.inner_text(".form-errors")
    assert first_tab.input_value("#body").endswith("Added in the first tab.")
    assert "Added in the" in first_tab.inner_text("[data-conflict]")
    # The changed line shows its changed words (it once showed "~ cd)"), said in words.
    assert_changed_words(first_tab.locator("[data-conflict]"), ["c)", "second"], ["d)", "first"])
    sponsor.shot("13-sponsor-edit-conflict")
    second_tab.close()
    # Saving again replaces the newer revision knowingly; its page shows the same words.
    first_tab.click(".document-form button[type=submit]")
    saved = re.search(r"Saved revision (\d+)", first_tab.inner_text(".flashes"))
    first_tab.goto(f"{document_url.replace('/sponsor/', '/')}/revisions/{saved[1]}")
    assert_changed_words(first_tab.locator(".diff"), ["c)", "second"], ["d)", "first"])
    assert first_tab.locator("[data-diff-legend]").is_visible()
    sponsor.shot("13b-sponsor-changed-words")

    # 8. The admin reads the audit trail as sentences.
    admin.go("/admin/audit")
    assert "Root Admin approved Sam Sponsor's account." in admin.page.inner_text("table")
    admin.shot("14-admin-audit-log")

    # 9. The sponsor imports two documents from a CSV file, then downloads them all.
    sponsor.go("/sponsor/documents")
    sponsor.page.click("text=Import")
    sponsor.shot("15-sponsor-import")
    rows = (
        "title,body,editor_email\n"
        ',"The visit to the north site is on Monday.",' + EDITOR_EMAIL + "\n"
        '"Supplier letter","Dear supplier, the order of 12 March arrived late.",\n'
    )
    upload = {"name": "documents.csv", "mimeType": "text/csv", "buffer": rows.encode()}
    sponsor.page.set_input_files("#file", upload)
    sponsor.page.click(".document-form button[type=submit]")
    problems = sponsor.page.inner_text("[data-import-problems]")
    assert "Nothing was imported" in problems and "title" in problems.lower()
    sponsor.shot("16-sponsor-import-refused")
    sponsor.page.set_input_files(
        "#file",
        {
            **upload,
            "buffer": rows.replace('\n,"The visit', '\nSite visit,"The visit').encode(),
        },
    )
    sponsor.page.click(".document-form button[type=submit]")
    assert "Imported 2 documents" in sponsor.page.inner_text(".flashes")
    assert "Supplier letter" in sponsor.page.inner_text("table")
    sponsor.shot("17-sponsor-imported")
    with sponsor.page.expect_download() as download:
        sponsor.page.click("text=Download CSV")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.splitlines()[0].startswith("id,title,") and "Site visit" in exported
    assert "Added in the first tab." in exported  # the latest revision's body

    # 10. An API token: created once (a reload mints no other), shown once, with Copy.
    sponsor.go("/account/tokens")
    sponsor.page.fill("#name", "Reporting script")
    sponsor.page.click(".toolbar-form button[type=submit]")
    assert sponsor.page.locator("#new-token").inner_text().strip()
    assert sponsor.page.locator("[data-copy=new-token]").is_visible()
    sponsor.shot("18-sponsor-new-token")
    sponsor.page.reload()
    assert sponsor.page.locator("#new-token").count() == 0
    assert sponsor.page.locator("tbody tr", has_text="Reporting script").count() == 1
    sponsor.go("/api/v1/docs")
    docs = sponsor.page.inner_text("main")
    assert "Contents" in docs and "curl" in docs and "`" not in docs
    sponsor.shot("19-api-docs")

    # 11. The admin's Models page: try a prompt, measure the model's speed.
    admin.go("/admin/models")
    admin.shot("20-admin-models")
    admin.page.locator("details", has_text="Try a prompt").first.locator("summary").click()
    admin.page.fill("textarea[name=prompt]", "The garden board met on Tuesday. First,")
    admin.page.locator(".try-form button[type=submit]").first.click()
    # Written in the background; the result appears beside the form, in view.
    result = admin.page.locator("[data-try-result]").first
    result.wait_for(timeout=120_000)
    assert "Answered in" in result.inner_text()
    assert result.is_visible() and admin.page.evaluate("window.scrollY") < 1500
    admin.shot("21-admin-tried-a-prompt")
    # Ten runs of the real model on a shared machine: a generous deadline, not a timing.
    admin.page.locator("button", has_text="Measure now").first.click()
    outcome = admin.page.locator("[data-speed-outcome], .task-failed").first
    outcome.wait_for(timeout=300_000)
    measured = outcome.inner_text()
    assert "tokens/s greedy" in measured, measured
    admin.shot("22-admin-measured-speed")

    for person in (editor, sponsor, admin):
        assert person.problems == [], f"{person.name}'s browser reported: {person.problems}"
