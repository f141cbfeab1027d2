"""What /readyz checks: each check returns None when fine, else what is wrong."""

from __future__ import annotations

import logging

from flask import current_app
from sqlalchemy import text

from ..extensions import db
from ..registry import service as registry
from ..registry.integrity import size_problem

log = logging.getLogger(__name__)


def check_database() -> str | None:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:
        db.session.rollback()
        log.warning("readiness: database: %s", error)
        return f"the database does not answer ({type(error).__name__})"
    return None


def check_broker() -> str | None:
    if current_app.config["JOBS_MODE"] != "celery":
        return None
    celery = current_app.extensions["celery"]
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
    except Exception as error:
        log.warning("readiness: broker: %s", error)
        return f"the job broker does not answer ({type(error).__name__})"
    return None


def check_production_model() -> str | None:
    try:
        version = registry.production_version()
    except Exception as error:
        db.session.rollback()
        return f"cannot read the model registry ({type(error).__name__})"
    if version is None:
        return "no model version has the production alias"
    if not (registry.artifact_path(version) / "config.json").is_file():
        return f"the files of {version.label} are missing from the model store"
    # What a worker found when it hashed them, or a size that differs (stat only).
    problem = version.files_problem or size_problem(version, registry.artifact_path(version))
    if problem:
        return f"{version.label} cannot be used: {problem}"
    return None


def readiness_checks() -> dict[str, str | None]:
    checks = {"database": check_database()}
    checks["broker"] = check_broker()
    checks["production_model"] = (
        check_production_model() if checks["database"] is None else "the database is down"
    )
    return checks
