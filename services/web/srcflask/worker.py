"""Celery worker entry point: `celery -A srcflask.worker worker`.

Needs CELERY_BROKER_URL (and the same DATABASE_URL and MODEL_STORE as the web).
"""

from celery.signals import worker_ready, worker_shutdown

from . import create_app
from .jobs.celery import Janitor

flask_app = create_app({"JOBS_MODE": "celery"})
celery_app = app = flask_app.extensions["celery"]
janitor = Janitor(flask_app)


@worker_ready.connect
def start_janitor(**kwargs) -> None:
    janitor.start()


@worker_shutdown.connect
def stop_janitor(**kwargs) -> None:
    janitor.stop()
