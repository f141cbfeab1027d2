"""Fixtures: an app per test on its own database, a client, a CLI runner and logins.

The suite runs on SQLite by default. `pytest --db postgres` runs it on the
Postgres server named by TEST_DATABASE_URL, inside a schema made for the run.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from srcflask import create_app
from srcflask.extensions import db
from srcflask.models import LoginSession, Role, User, UserStatus

from .factories import DEFAULT_PASSWORD, UserFactory


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="database to run the suite on (postgres needs TEST_DATABASE_URL)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--db") == "postgres" and not os.environ.get("TEST_DATABASE_URL"):
        raise pytest.UsageError("--db postgres needs TEST_DATABASE_URL")


# Tests that take a while, and what to say as each starts (the suite is otherwise dots).
LONG_RUNNING = {
    "slow": "runs the real default model",
    "browser": "drives Chromium through the product",
    "production": "starts nginx, gunicorn, Celery, Postgres and Redis",
    "fuzz": "fuzzes the API from its OpenAPI document",
    "scan": "attacks the app with wapiti and sqlmap",
}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logstart(nodeid: str, location) -> None:
    item = _ITEMS.get(nodeid)
    if item is None:
        return
    markers = [marker for marker in LONG_RUNNING if item.get_closest_marker(marker)]
    if "slow" in markers and len(markers) > 1:
        markers.remove("slow")  # the more specific marker says what takes the time
    doing = [LONG_RUNNING[marker] for marker in markers]
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    if doing and reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(f"{nodeid}: {'; '.join(doing)} (takes a while)")


_ITEMS: dict[str, pytest.Item] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _ITEMS.update((item.nodeid, item) for item in items)


def pytest_report_header(config: pytest.Config) -> str:
    return f"srcflask database: {config.getoption('--db')}"


def schema_url(base_url: str, schema: str) -> str:
    url = sa.engine.make_url(base_url).set(drivername="postgresql+psycopg")
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def postgres_schema_factory(request: pytest.FixtureRequest):
    """Make empty Postgres schemas for this run; all are dropped at the end."""
    base_url = os.environ.get("TEST_DATABASE_URL")
    if not base_url:
        pytest.skip("TEST_DATABASE_URL is not set")
    admin_engine = sa.create_engine(schema_url(base_url, "public"), isolation_level="AUTOCOMMIT")
    made: list[str] = []

    def make() -> str:
        schema = f"srcflask_test_{uuid.uuid4().hex[:12]}"
        with admin_engine.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        made.append(schema)
        return schema_url(base_url, schema)

    yield make
    with admin_engine.connect() as connection:
        for schema in made:
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin_engine.dispose()


@pytest.fixture(scope="session")
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def shared_postgres_url(database_kind, request) -> str | None:
    """One schema for the whole run; tables are emptied after each test."""
    if database_kind != "postgres":
        return None
    factory = request.getfixturevalue("postgres_schema_factory")
    url = factory()
    engine = sa.create_engine(url)
    db.metadata.create_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def empty_database_url(database_kind, tmp_path, request) -> str:
    """A URL of a database with no tables at all (for migration tests)."""
    if database_kind == "postgres":
        return request.getfixturevalue("postgres_schema_factory")()
    return f"sqlite:///{tmp_path / 'empty.sqlite3'}"


def make_app(database_url: str, instance_path, **overrides) -> Flask:
    config = {
        "SQLALCHEMY_DATABASE_URI": database_url,
        "MODEL_CACHE": str(instance_path / "cache"),
        **overrides,
    }
    return create_app(config, env_name="testing", instance_path=str(instance_path))


@pytest.fixture
def app_factory(shared_postgres_url, tmp_path):
    """Build apps on this test's database; settings can be overridden per app."""
    database_url = shared_postgres_url or f"sqlite:///{tmp_path / 'test.sqlite3'}"
    apps: list[Flask] = []

    def build(**overrides) -> Flask:
        app = make_app(database_url, tmp_path / "instance", **overrides)
        if not apps:
            with app.app_context():
                db.create_all()
        apps.append(app)
        return app

    yield build
    if apps:
        with apps[0].app_context():
            db.session.remove()
            if shared_postgres_url:
                tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
                db.session.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
                db.session.commit()
            db.engine.dispose()


@pytest.fixture
def app(app_factory) -> Flask:
    return app_factory()


@pytest.fixture
def client(app) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@dataclass(frozen=True)
class Account:
    """What a test needs to know about a user it made."""

    id: int
    name: str
    email: str
    password: str
    role: Role
    status: UserStatus


@pytest.fixture
def make_user(app):
    """Create a user (approved sponsor unless told otherwise) and return its Account."""

    def make(**fields) -> Account:
        with app.app_context():
            user = UserFactory(**fields)
            return Account(user.id, user.name, user.email, DEFAULT_PASSWORD, user.role, user.status)

    return make


class AuthActions:
    def __init__(self, client: FlaskClient):
        self.client = client

    def login(
        self,
        account: Account | None = None,
        *,
        email: str | None = None,
        password: str | None = None,
    ):
        return self.client.post(
            "/auth/login",
            data={"email": email or account.email, "password": password or account.password},
        )

    def logout(self):
        return self.client.post("/auth/logout")


@pytest.fixture
def auth(client) -> AuthActions:
    return AuthActions(client)


@pytest.fixture
def admin(make_user) -> Account:
    return make_user(role=Role.ADMIN, name="Ada Admin")


@pytest.fixture
def sponsor(make_user) -> Account:
    return make_user(role=Role.SPONSOR, name="Sam Sponsor")


@pytest.fixture
def editor(make_user) -> Account:
    return make_user(role=Role.EDITOR, name="Eddie Editor")


def login_as(client: FlaskClient, account: Account) -> FlaskClient:
    """Log a client in through the real form; fail loudly if it does not work."""
    response = AuthActions(client).login(account)
    assert response.status_code == 303, response.get_data(as_text=True)
    return client


def plant_session(app: Flask, client: FlaskClient, user_id: int) -> FlaskClient:
    """Log a client in without the form: open a login session and set its cookie."""
    with app.app_context():
        user = db.session.get(User, user_id)
        row, key = LoginSession.start(user, "127.0.0.1", "test")
        db.session.add(row)
        db.session.commit()
        user.session_key = key
        cookie_id = user.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = cookie_id
        session["_fresh"] = True
    return client


@pytest.fixture
def admin_client(app, admin) -> FlaskClient:
    return login_as(app.test_client(), admin)


@pytest.fixture
def sponsor_client(app, sponsor) -> FlaskClient:
    return login_as(app.test_client(), sponsor)


@pytest.fixture
def editor_client(app, editor) -> FlaskClient:
    return login_as(app.test_client(), editor)


# -- tiny models --------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny GPT-2, Llama and Gemma 3 folders (raw and chat), a second Llama, and a GGUF file."""
    from . import tinymodels

    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "gpt2": tinymodels.build_model("gpt2", root / "gpt2"),
        "llama": tinymodels.build_model("llama", root / "llama"),
        "gemma3": tinymodels.build_model("gemma3", root / "gemma3"),
        # Larger weights: a model this small can only learn when its logits can move.
        "llama-trainable": tinymodels.build_model(
            "llama", root / "llama-trainable", seed=5, init_std=0.3
        ),
        # Room for a chat template with the default system line and 100 new tokens.
        "llama-chat": tinymodels.build_model(
            "llama", root / "llama-chat", chat=True, seed=3, context=512
        ),
        "llama-other": tinymodels.build_model("llama", root / "llama-other", seed=7),
        "gguf": tinymodels.write_gguf(root / "tiny-llama.Q8_0.gguf"),
    }


@pytest.fixture
def production_model(app, tiny_models) -> str:
    """Import a tiny chat model and make it production; return its label."""
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(
            str(tiny_models["llama-chat"]), "tiny-chat", actor=None
        ).version
        registry.set_alias(version, "production", actor=None)
        return version.label


@pytest.fixture
def model_script(app):
    """Script what the app's model does (tests/fakes.py): calls, failures, text."""
    from . import fakes

    return fakes.install(app)


@pytest.fixture
def run_jobs(app):
    """Run every queued generation job now, as a worker would; return how many ran."""
    from srcflask.jobs import work

    def run() -> int:
        with app.app_context():
            return work.run_pending()

    return run


@pytest.fixture(scope="module")
def browser(server):
    """Chromium driven by Playwright, for the browser tests (each module brings its `server`)."""
    from playwright.sync_api import sync_playwright

    from .test_browser import CHROMIUM, CHROMIUM_FLAGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()
