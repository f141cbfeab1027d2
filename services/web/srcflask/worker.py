"""Celery worker entry point: `celery -A srcflask.worker worker`.

Needs CELERY_BROKER_URL (and the same DATABASE_URL and MODEL_STORE as the web).
"""

import os
import threading

from celery.signals import worker_ready, worker_shutdown

from . import create_app
from .jobs.celery import Janitor
from .registry import loads

flask_app = create_app({"JOBS_MODE": "celery"})
# Before PyTorch starts its threads: they inherit the priority of the thread that made them.
os.nice(max(0, min(flask_app.config["WORKER_NICE"], 19)))
celery_app = app = flask_app.extensions["celery"]
janitor = Janitor(flask_app)


def writes_machine_text(consumer) -> bool:
    """Whether this worker takes generation jobs (a `-Q training` worker does not)."""
    queues = getattr(getattr(consumer, "task_consumer", None), "queues", None)
    if not queues:
        return True
    return any(queue.name == flask_app.config["CELERY_QUEUE"] for queue in queues)


def preload_model() -> None:
    with flask_app.app_context():
        loads.preload_production()


@worker_ready.connect
def start_janitor(sender=None, **kwargs) -> None:
    janitor.start()
    if writes_machine_text(sender):
        # In the background: a job that comes meanwhile waits for the same load.
        threading.Thread(target=preload_model, name="srcflask-preload", daemon=True).start()


@worker_shutdown.connect
def stop_janitor(**kwargs) -> None:
    janitor.stop()
