"""Migrations build the schema the models describe, on SQLite and on Postgres."""

from __future__ import annotations

import flask_migrate
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
