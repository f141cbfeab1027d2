"""Migrations build the schema the models describe, on SQLite and on Postgres."""

from __future__ import annotations

from datetime import UTC, datetime

import flask_migrate
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from srcflask.extensions import db

from .conftest import make_app


def test_upgrade_from_empty_matches_the_models(empty_database_url, tmp_path):
    app = make_app(empty_database_url, tmp_path / "instance")
    with app.app_context():
        flask_migrate.upgrade()
        with db.engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "render_as_batch": True}
            )
            differences = compare_metadata(context, db.metadata)
            tables = set(sa.inspect(connection).get_table_names())
        db.engine.dispose()

    assert differences == []
    assert {"users", "audit_events", "alembic_version"} <= tables


def test_upgrade_is_repeatable_and_downgrade_works(empty_database_url, tmp_path):
    app = make_app(empty_database_url, tmp_path / "instance")
    with app.app_context():
        flask_migrate.upgrade()
        flask_migrate.upgrade()  # a second boot changes nothing
        flask_migrate.downgrade(revision="base")
        with db.engine.connect() as connection:
            assert set(sa.inspect(connection).get_table_names()) <= {"alembic_version"}
        flask_migrate.upgrade()
        db.engine.dispose()


def test_0008_keeps_accounts_and_refuses_to_downgrade_over_repeated_signups(
    empty_database_url, tmp_path, caplog
):
    app = make_app(empty_database_url, tmp_path / "instance")
    account = (
        "INSERT INTO users (id, name, email, organization, password_hash, role, status, "
        "created_at, session_version, duplicate_of_id) VALUES (:id, 'Sam', 's@x.org', '', "
        "'h', 'sponsor', 'pending', '2026-01-01 00:00:00+00:00', 1, :of)"
    )
    with app.app_context():
        flask_migrate.upgrade(revision="0007")
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(account.replace(", duplicate_of_id", "").replace(", :of", "")), {"id": 1}
            )
        flask_migrate.upgrade()
        with db.engine.begin() as connection:
            assert connection.execute(sa.text("SELECT email FROM users")).scalars().all() == [
                "s@x.org"
            ]
            connection.execute(sa.text(account), {"id": 2, "of": 1})  # a repeat shares it
        with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
            connection.execute(sa.text(account), {"id": 3, "of": None})  # a second account not
        with pytest.raises(SystemExit):  # flask_migrate logs the reason and exits
            flask_migrate.downgrade(revision="0007")
        assert "1 repeated sign-up(s) share an email" in caplog.text
        with db.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM users WHERE id = 2"))
        flask_migrate.downgrade(revision="0007")
        with db.engine.begin() as connection:
            assert connection.execute(sa.text("SELECT id FROM users")).scalars().all() == [1]
        db.engine.dispose()


def backfilled(url, instance, *, before: str, machine: str, edited: str, column: str):
    """Accepted, edited and rejected reviews written before a migration; what it fills in."""
    from srcflask.models import Decision, Review

    from .factories import DocumentFactory, ModelVersionFactory

    app = make_app(url, instance)
    with app.app_context():
        flask_migrate.upgrade()
        version = ModelVersionFactory()
        for decision, final in [
            (Decision.ACCEPTED, None),
            (Decision.EDITED, edited),
            (Decision.REJECTED, None),
        ]:
            document = DocumentFactory(
                machine_text__text=machine, machine_text__model_version=version
            )
            db.session.add(
                Review(
                    machine_text=document.revisions[0].machine_text,
                    decision=decision,
                    text=final,
                )
            )
        db.session.commit()
        db.session.remove()
        flask_migrate.downgrade(revision=before)  # as they were before the migration
        flask_migrate.upgrade()
        with db.engine.begin() as connection:
            rows = connection.execute(
                sa.text(f"SELECT decision, {column} FROM reviews ORDER BY id")
            ).all()
        db.engine.dispose()
    return rows


def test_0009_measures_the_edit_distance_of_reviews_written_before_it(empty_database_url, tmp_path):
    rows = backfilled(
        empty_database_url,
        tmp_path / "instance",
        before="0008",
        machine="abcd",
        edited="abXY",
        column="edit_distance",
    )
    assert rows == [("accepted", 0.0), ("edited", 0.5), ("rejected", None)]


def test_0011_measures_the_words_kept_by_reviews_written_before_it(empty_database_url, tmp_path):
    rows = backfilled(
        empty_database_url,
        tmp_path / "instance",
        before="0010",
        machine="one two three four",
        edited="one two and more",
        column="kept_share",
    )
    assert rows == [("accepted", 1.0), ("edited", 0.5), ("rejected", 0.0)]


def insert_version_at_0011(number: int, settings: dict) -> int:
    """A registry row with only the columns the table had at 0011 (the ORM has more now)."""
    from srcflask.models import ModelVersion

    sha = f"{number:064x}"
    row = {
        "name": "fake-model",
        "version": number,
        "source": "/nowhere",
        "source_kind": "folder",
        "sha256": sha,
        "artifact": f"fake-model/v{number}-{sha[:12]}",
        "architecture": "GPT2LMHeadModel",
        "model_type": "gpt2",
        "parameter_count": 1000,
        "size_bytes": 4000,
        "tokenizer": "PreTrainedTokenizerFast",
        "prompt_format": "raw",
        "generation_settings": settings,
        "metrics": {},
        "description": "",
        "tags": [],
        "lineage": {},
        "imported_by_label": "command line",
        "created_at": datetime.now(UTC),
    }
    return db.session.execute(sa.insert(ModelVersion.__table__).values(row)).inserted_primary_key[0]


def test_0012_moves_versions_on_the_old_default_to_the_editor_preset(empty_database_url, tmp_path):
    from srcflask.ml.settings import DEFAULT_PRESET, PRESETS
    from srcflask.models import ModelVersion

    old_default = {
        key: value
        for key, value in PRESETS["original"].to_dict().items()
        if key not in ("min_p", "typical_p", "best_of", "stop_at", "ban_markup")
    }
    chosen = {**old_default, "num_beams": 3}
    app = make_app(empty_database_url, tmp_path / "instance")
    with app.app_context():
        flask_migrate.upgrade(revision="0011")
        unchosen = insert_version_at_0011(1, old_default)
        kept = insert_version_at_0011(2, chosen)
        db.session.commit()
        db.session.remove()
        flask_migrate.upgrade()
        settings = {v.id: v.generation_settings for v in db.session.query(ModelVersion)}
        db.session.remove()
        db.engine.dispose()
    assert settings[unchosen] == PRESETS[DEFAULT_PRESET].to_dict()
    assert settings[kept] == chosen
