"""srcflask: sponsors write documents, a language model writes machine text, editors review it."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import event
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import BaseConverter

from .config import load_config
from .models.types import MAX_ID

# services/web/migrations beside the package; an installed copy (the Docker image)
# names its folder with SRCFLASK_MIGRATIONS_DIR.
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class DatabaseIdConverter(BaseConverter):
    """`<int:...>` for ids: 1 to 2**31 - 1, the range of a database integer.

    Larger numbers match too, but become 0, an id no row has, so the view
    answers its usual 404 (a converter that refused them would make werkzeug
    answer 405).
    """

    regex = r"[1-9][0-9]{0,18}"
    part_isolating = True
    weight = 50
    MAX = MAX_ID

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= self.MAX else 0

    def to_url(self, value) -> str:
        return str(int(value))


def create_app(
    config: dict[str, Any] | None = None,
    env_name: str | None = None,
    instance_path: str | None = None,
) -> Flask:
    """Build the srcflask app; `config` overrides settings (tests use it)."""
    instance_path = instance_path or os.environ.get("SRCFLASK_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path)
    # Ids in URLs stay within the database's integer range: a bigger one is a 404.
    app.url_map.converters["int"] = DatabaseIdConverter
    configure(app, env_name, config)
    register_extensions(app)
    register_security(app)
    register_jobs(app)
    register_blueprints(app)
    register_templating(app)
    register_error_handlers(app)
    return app


class QuietRoutineRequests(logging.Filter):
    """Leave out of the development server's request log what pages ask for by themselves:
    static files and the machine-text status polls, when they succeed. Everything else,
    and every failed request, is logged at INFO as before."""

    ROUTINE = re.compile(
        r'"(?:GET|HEAD) (?:/static/|/favicon\.ico|/documents/(?:\d+/)?machine-text[?\s])'
        r'[^"]*" (?:200|304) '
    )

    COLOURS = re.compile(r"\x1b\[[0-9;]*m")  # werkzeug colours all but 200s on a terminal

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.ROUTINE.search(self.COLOURS.sub("", record.getMessage()))


def configure(app: Flask, env_name: str | None, overrides: dict[str, Any] | None) -> None:
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(load_config(env_name, app.instance_path))
    app.config.from_mapping(overrides or {})
    logging.basicConfig(
        level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    quiet = logging.getLogger("werkzeug")
    if not any(isinstance(f, QuietRoutineRequests) for f in quiet.filters):
        quiet.addFilter(QuietRoutineRequests())
    if app.config["PROXY_FIX_HOPS"]:
        hops = app.config["PROXY_FIX_HOPS"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


def register_extensions(app: Flask) -> None:
    from . import models  # noqa: F401  (registers the tables)
    from .extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrations = os.environ.get("SRCFLASK_MIGRATIONS_DIR") or str(MIGRATIONS_DIR)
    migrate.init_app(app, db, directory=migrations, render_as_batch=True, compare_type=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from .ml.cache import GeneratorCache

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            event.listen(db.engine, "connect", set_sqlite_pragmas)

    app.extensions["srcflask.generators"] = GeneratorCache(
        max_models=app.config["GENERATION_CACHED_MODELS"],
        device=app.config["GENERATION_DEVICE"],
        threads=app.config["GENERATION_THREADS"] or None,
        max_input_tokens=app.config["GENERATION_MAX_INPUT_TOKENS"] or None,
        dtype=app.config["GENERATION_DTYPE"],
        max_rows=app.config["GENERATION_MAX_ROWS"] or None,
        cpu_linear=app.config["GENERATION_CPU_LINEAR"],
    )


def set_sqlite_pragmas(connection, record) -> None:
    # WAL lets pages read while the generation thread writes progress; foreign keys
    # are off in SQLite unless asked for.
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def register_jobs(app: Flask) -> None:
    from . import jobs

    jobs.init_app(app)


def register_security(app: Flask) -> None:
    from . import inputs, security

    # Bodies are checked first: no view, nor the access checks, reads a hostile one.
    inputs.init_app(app)
    security.init_app(app)


def register_blueprints(app: Flask) -> None:
    from . import accounts, api, areas, documents, experiments, main, registry

    app.register_blueprint(main.bp)
    # Each feature registers its own blueprints and commands, and adds its pages to
    # the role areas, which are registered once every feature has done so.
    for feature in (accounts, documents, registry, experiments):
        feature.init_app(app)
    areas.init_app(app)
    api.init_app(app)


def register_templating(app: Flask) -> None:
    from . import templating

    templating.init_app(app)


def register_error_handlers(app: Flask) -> None:
    from . import errors

    errors.init_app(app)
