"""Running generation jobs: an in-process runner by default, Celery when configured.

JOBS_MODE picks the runner: `local` (one generation thread in the web
process), `celery` (the default when CELERY_BROKER_URL is set) or `manual`
(nothing runs by itself; for tests and `flask jobs run`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app

from ..config import ConfigError

log = logging.getLogger(__name__)

# Other kinds of background work, by name: run(row_id), called in an app context.
TASKS: dict[str, Callable[[int], object]] = {}


def register_task(name: str, run: Callable[[int], object]) -> None:
    """Let every runner run `run(row_id)` for rows handed over as `submit([row_id], name)`.

    The row is the job: `run` claims it, so a row handed over twice runs once.
    """
    TASKS[name] = run


def init_app(app: Flask) -> None:
    mode = app.config["JOBS_MODE"]
    if mode not in ("local", "celery", "manual"):
        raise ConfigError(f"JOBS_MODE must be local, celery or manual, got {mode!r}")
    if mode == "celery" and not app.config["CELERY_BROKER_URL"]:
        raise ConfigError("JOBS_MODE is celery but CELERY_BROKER_URL is not set")
    if mode == "celery":
        from .celery import CeleryRunner

        runner = CeleryRunner(app)
    elif mode == "local":
        from .local import LocalRunner

        runner = LocalRunner(app)
        # Start with the first request, so CLI commands (db upgrade...) never start it.
        app.before_request(runner.start)
    else:
        from .local import ManualRunner

        runner = ManualRunner()
    app.extensions["srcflask.jobs"] = runner

    from . import pages  # noqa: F401  (adds the API limits page to /admin)
    from .cli import jobs_group

    app.cli.add_command(jobs_group)


def runner():
    return current_app.extensions["srcflask.jobs"]


def submit(ids: list[int], kind=None) -> None:
    """Hand jobs (machine texts unless `kind` says otherwise) to the runner.

    Never raises: the rows stay queued regardless, and runners find them.
    """
    try:
        runner().submit(ids, kind)
    except Exception:
        log.exception("could not hand jobs %s to the runner; they stay queued", ids)
