"""The people bench/load.py sends at the production topology: sponsors saving, editors reading.

Run by bench/load.py with Locust (headless); it gives the accounts in the JSON file
named by LOAD_ACCOUNTS ({"sponsors": [...], "readers": [...]}, each with email,
password and, for a sponsor, the id of the editor it assigns) and the documents in
LOAD_DOCUMENTS (bench/documents.jsonl). Each acknowledged save (a 303 answer) is
appended to LOAD_ACKS as "<kind> <document id>", so the database can be checked
against exactly what the server promised.

Sponsors save realistic documents of hundreds of tokens: a new document now and then,
otherwise an edit of one of theirs (a paragraph added). Readers are the editors the
documents are assigned to: they browse their lists, documents with their history,
revision pages and the machine-text status the pages poll.
"""

from __future__ import annotations

import html
import itertools
import json
import os
import random
import re
import time
from pathlib import Path

from locust import HttpUser, between, events, task
from requests.adapters import HTTPAdapter

ACCOUNTS = json.loads(Path(os.environ["LOAD_ACCOUNTS"]).read_text())
DOCUMENTS = [
    json.loads(line)
    for line in Path(os.environ["LOAD_DOCUMENTS"]).read_text().splitlines()
    if line.strip()
]
# Open for the whole run, line-buffered: each line is on disk as soon as it is written.
ACKS = open(os.environ["LOAD_ACKS"], "a", buffering=1)  # noqa: SIM115
# Every request: start time, name, milliseconds, and the error if it failed; and a
# "steady" line when every person has started (the figures count from then).
REQUESTS = open(os.environ["LOAD_REQUESTS"], "a", buffering=1)  # noqa: SIM115
SPONSORS = itertools.cycle(ACCOUNTS["sponsors"])
READERS = itertools.cycle(ACCOUNTS["readers"])
# Longer than any answer should take; one that takes this long counts as an error.
TIMEOUT = 30
# 1 for people's pace; 0 for no pause at all between tasks (a capacity run).
WAIT = float(os.environ.get("LOAD_WAIT_SCALE", "1"))
# Each person connects from an address of their own (all of 127.0.0.0/8 is loopback),
# as people do: the per-address sign-in limits then meet each person, not the crowd.
ADDRESSES = (f"127.0.{n // 200}.{n % 200 + 10}" for n in itertools.count())

CSRF = re.compile(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"')
BASE_REVISION = re.compile(r'name="base_revision" (?:type="hidden" )?value="(\d+)"')
ADDITIONS = [
    "Action: the secretary circulates these notes before the next meeting.",
    "Update: the figures above were checked again on Friday and stand.",
    "Note: questions about this section go to the office, not to the list.",
    "Added after the meeting: the deadline moves by one week.",
    "Correction: the second item applies to both sites, not only the first.",
]


@events.request.add_listener
def record(request_type, name, response_time, exception, start_time=None, **kwargs):
    error = "" if exception is None else repr(exception).replace("\t", " ").replace("\n", " ")
    REQUESTS.write(f"{start_time:.3f}\t{name}\t{response_time:.1f}\t{error}\n")


@events.spawning_complete.add_listener
def steady(user_count, **kwargs):
    REQUESTS.write(f"{time.time():.3f}\tsteady\t{user_count}\t\n")


class FromAddress(HTTPAdapter):
    """Connections from one loopback source address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


class Person(HttpUser):
    abstract = True

    def on_start(self) -> None:
        self.client.mount("http://", FromAddress(next(ADDRESSES)))

    def login(self, account: dict) -> None:
        page = self.client.get("/auth/login", name="login page", timeout=TIMEOUT)
        token = CSRF.search(page.text).group(1)
        with self.client.post(
            "/auth/login",
            data={"csrf_token": token, "email": account["email"], "password": account["password"]},
            name="login",
            allow_redirects=False,
            timeout=TIMEOUT,
            catch_response=True,
        ) as answer:
            if answer.status_code != 303:
                answer.failure(f"login answered {answer.status_code}")

    def page(self, path: str, name: str):
        """GET a page; anything but 200 is a failure."""
        return self.client.get(path, name=name, timeout=TIMEOUT)


class Sponsor(Person):
    weight = 1
    wait_time = between(3 * WAIT, 9 * WAIT)

    def on_start(self) -> None:
        super().on_start()
        self.account = next(SPONSORS)
        self.documents: list[int] = []
        self.login(self.account)
        self.new_document()

    def save(self, path: str, fields: dict, kind: str) -> int | None:
        """POST a document form; returns the document id when the save was acknowledged."""
        with self.client.post(
            path,
            data=fields,
            name=f"save: {kind}",
            allow_redirects=False,
            timeout=TIMEOUT,
            catch_response=True,
        ) as answer:
            found = re.search(r"/sponsor/documents/(\d+)$", answer.headers.get("Location", ""))
            if answer.status_code != 303 or not found:
                answer.failure(f"save answered {answer.status_code}")
                return None
            document_id = int(found.group(1))
            ACKS.write(f"{kind} {document_id}\n")
            return document_id

    @task(1)
    def new_document(self) -> None:
        form = self.page("/sponsor/documents/new", "form: new document")
        document = random.choice(DOCUMENTS)
        fields = {
            "csrf_token": CSRF.search(form.text).group(1),
            "title": f"{document['title']} ({self.account['email'].split('@')[0]})",
            "body": document["body"],
            "editor_id": str(self.account["editor_id"]),
        }
        document_id = self.save("/sponsor/documents/new", fields, "new")
        if document_id is not None:
            self.documents.append(document_id)

    @task(4)
    def edit_document(self) -> None:
        if not self.documents:
            return self.new_document()
        document_id = random.choice(self.documents)
        path = f"/sponsor/documents/{document_id}/edit"
        form = self.page(path, "form: edit document")
        body = re.search(r'<textarea[^>]*name="body"[^>]*>\n?(.*?)</textarea>', form.text, re.S)
        title = re.search(r'name="title"[^>]*value="([^"]*)"', form.text)
        if not (body and title):
            return
        fields = {
            "csrf_token": CSRF.search(form.text).group(1),
            "base_revision": BASE_REVISION.search(form.text).group(1),
            "title": html.unescape(title.group(1)),
            "body": html.unescape(body.group(1)) + "\n\n" + random.choice(ADDITIONS),
            "editor_id": str(self.account["editor_id"]),
        }
        self.save(path, fields, "edit")

    @task(2)
    def browse_own(self) -> None:
        self.page("/sponsor/documents", "list: sponsor documents")
        if self.documents:
            document_id = random.choice(self.documents)
            self.page(f"/sponsor/documents/{document_id}", "page: document")
            self.page(f"/documents/{document_id}/machine-text", "status: machine text")


class Reader(Person):
    weight = 1
    wait_time = between(1 * WAIT, 4 * WAIT)

    def on_start(self) -> None:
        super().on_start()
        self.login(next(READERS))
        self.documents: list[int] = []

    def refresh_list(self, path: str, name: str) -> None:
        listed = self.page(path, name)
        self.documents = [int(i) for i in re.findall(r'href="/documents/(\d+)"', listed.text)] or [
            int(i) for i in re.findall(r"/editor/documents/(\d+)/review", listed.text)
        ]

    @task(3)
    def browse_list(self) -> None:
        self.refresh_list("/editor/documents", "list: editor documents")
        if self.documents:
            ids = ",".join(str(i) for i in self.documents[:100])
            self.page(f"/documents/machine-text?ids={ids}", "status: list refresh")

    @task(1)
    def browse_needs_review(self) -> None:
        self.refresh_list("/editor/documents?review=needs-review", "list: needs review")

    @task(3)
    def read_document(self) -> None:
        if not self.documents:
            return self.browse_list()
        document_id = random.choice(self.documents)
        page = self.page(f"/documents/{document_id}", "page: document with history")
        self.page(f"/documents/{document_id}/machine-text", "status: machine text")
        numbers = re.findall(rf"/documents/{document_id}/revisions/(\d+)", page.text)
        if numbers:
            self.page(
                f"/documents/{document_id}/revisions/{random.choice(numbers)}", "page: revision"
            )
