"""Backup and restore drill: pg_dump while sponsors save, restore into a new database, start.

The production processes run on loopback (as in test_production). Two sponsors save
documents through nginx while `pg_dump -Fc` runs; every acknowledged save is recorded
with its time. The dump is restored with `pg_restore` into a new database made with
`createdb`, and the app starts on it: every save acknowledged before the dump began is
there (pg_dump reads one consistent snapshot, taken as it starts), `flask models verify`
finds the model store's checksums intact, and /readyz is green. The commands are the
ones docs/deployment.md gives.

Needs nginx, pg_dump, pg_restore and createdb, TEST_DATABASE_URL and TEST_REDIS_URL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from . import production_support
from .production_support import (
    PASSWORD,
    REQUIREMENTS,
    Topology,
    Visitor,
    sign_up_and_approve,
)

pytestmark = [
    *REQUIREMENTS,
    pytest.mark.skipif(
        not all(shutil.which(p) for p in ("pg_dump", "pg_restore", "createdb")),
        reason="pg_dump, pg_restore and createdb are not all installed",
    ),
]
fresh_database = production_support.fresh_database
topology = production_support.topology

SAVES_PER_SPONSOR = 25
SPONSORS = [("Sam Sponsor", "sam@example.org"), ("Sue Sponsor", "sue@example.org")]


@dataclass(frozen=True)
class Save:
    title: str
    document_id: int
    acknowledged_at: float


def postgres_command(database_url: str, *command: str) -> tuple[list[str], dict[str, str]]:
    """A Postgres client command as the docs write it, connected through PG* variables."""
    url = sa.engine.make_url(database_url)
    env = os.environ | {"PGHOST": url.host or "127.0.0.1", "PGPORT": str(url.port or 5432)}
    if url.password:
        env["PGPASSWORD"] = url.password
    return [command[0], "-U", url.username or "postgres", *command[1:]], env


def save_documents(base: str, email: str, attempted: list[str], saves: list[Save]) -> None:
    """Save documents as one sponsor, one after another; keep each acknowledged save."""
    sponsor = Visitor(base)
    assert sponsor.login(email, PASSWORD).url.endswith("/sponsor/documents")
    token = sponsor.form_token("/sponsor/documents/new")
    for n in range(SAVES_PER_SPONSOR):
        title = f"{email.split('@')[0]} report {n}"
        attempted.append(title)
        response = sponsor.post(
            "/sponsor/documents/new",
            token,
            title=title,
            body=f"Quarterly figures for the harbour office, part {n}.",
        )
        assert response.status_code == 303, response.text[:500]
        document_id = int(re.search(r"/sponsor/documents/(\d+)$", response.headers["Location"])[1])
        saves.append(Save(title, document_id, time.monotonic()))


def test_a_dump_taken_while_sponsors_save_restores_every_acknowledged_save(
    topology, fresh_database, tmp_path
):
    topology.start()
    restored_url = None
    try:
        sign_up_and_approve(topology, [(name, email, "sponsor") for name, email in SPONSORS])
        attempted: list[str] = []
        saves: list[Save] = []
        failures: list[BaseException] = []

        def sponsor(email: str) -> None:
            try:
                save_documents(topology.base, email, attempted, saves)
            except BaseException as error:  # reported by the main thread
                failures.append(error)

        threads = [threading.Thread(target=sponsor, args=(email,)) for _, email in SPONSORS]
        for thread in threads:
            thread.start()
        assert production_support.wait_until(lambda: len(saves) >= 10 or failures, 60)

        # Back up while the sponsors keep saving (docs/deployment.md).
        dump = tmp_path / "srcflask.dump"
        command, env = postgres_command(fresh_database, "pg_dump", "-Fc", dbname(fresh_database))
        dump_began = time.monotonic()
        with dump.open("wb") as out:
            subprocess.run(command, stdout=out, env=env, check=True, timeout=120)
        dump_ended = time.monotonic()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        acknowledged_before = {s.title for s in saves if s.acknowledged_at < dump_began}
        assert len(saves) == len(SPONSORS) * SAVES_PER_SPONSOR
        assert any(s.acknowledged_at > dump_began for s in saves), "saving stopped before the dump"
        for name in list(topology.processes):  # the old server is gone
            topology.kill(name)

        # Restore into a new database and start the app on it.
        restored_url = sa.engine.make_url(fresh_database).set(
            database=f"srcflask_restored_{uuid.uuid4().hex[:10]}"
        )
        restored_url = restored_url.render_as_string(hide_password=False)
        command, env = postgres_command(restored_url, "createdb", dbname(restored_url))
        subprocess.run(command, env=env, check=True, timeout=60)
        command, env = postgres_command(
            restored_url, "pg_restore", "-d", dbname(restored_url), "--clean", "--if-exists"
        )
        with dump.open("rb") as source:
            subprocess.run(command, stdin=source, env=env, check=True, timeout=120)

        restored = Topology(topology.folder, restored_url, topology.tiny_model)
        restored.start()
        try:
            check_the_restored_app(restored, restored_url, attempted, acknowledged_before)
        finally:
            for name in list(restored.processes):
                restored.kill(name)
        print(
            f"{len(acknowledged_before)} saves acknowledged before the dump, "
            f"{len(saves)} in all; the dump took {dump_ended - dump_began:.2f} s"
        )
    except AssertionError:
        print(topology.logs())
        raise
    finally:
        if restored_url:
            drop_database(restored_url)


def check_the_restored_app(restored, url, attempted, acknowledged_before) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT documents.title, documents.body, count(revisions.id) FROM documents"
                " JOIN revisions ON revisions.document_id = documents.id"
                " GROUP BY documents.id, documents.title, documents.body"
            )
        ).all()
        users = connection.scalar(sa.text("SELECT count(*) FROM users"))
    engine.dispose()
    titles = {title for title, _, _ in rows}
    # Every save acknowledged before the dump began is there, each with its revision;
    # saves in flight during the dump may be there or not, never half.
    assert acknowledged_before <= titles, sorted(acknowledged_before - titles)
    assert titles <= set(attempted)
    assert all(revisions == 1 and body.startswith("Quarterly") for _, body, revisions in rows)
    assert users == 1 + len(SPONSORS)  # the operator and the sponsors

    result = restored.boot(
        "flask", "--app", "srcflask", "models", "verify", BOOT_MIGRATE="0", BOOT_PULL_MODEL="0"
    )
    assert "tiny:1" in result.stdout and "1 model version(s) verified" in result.stdout
    ready = Visitor(restored.base).get("/readyz")
    assert ready.status_code == 200, ready.text
    sponsor = Visitor(restored.base)
    assert sponsor.login(SPONSORS[0][1], PASSWORD).url.endswith("/sponsor/documents")


def dbname(url: str) -> str:
    return sa.engine.make_url(url).database


def drop_database(url: str) -> None:
    base = sa.engine.make_url(os.environ["TEST_DATABASE_URL"])
    admin = sa.create_engine(
        base.set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname(url)}" WITH (FORCE)'))
    admin.dispose()
