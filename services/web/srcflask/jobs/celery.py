"""Distributed mode: generation jobs through Celery with a Redis broker.

The Flask docs' pattern: a `FlaskTask` that runs inside an app context, and
tasks declared with `@shared_task`. Messages carry machine-text ids only; the
rows stay the source of truth, so a lost or repeated message loses or
duplicates nothing.
"""

from __future__ import annotations

import logging
import threading
import time

from celery import Celery, Task
from flask import Flask

log = logging.getLogger(__name__)


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=app.config["CELERY_BROKER_URL"],
        task_ignore_result=True,
        # Acknowledge after the work, and give a job back if its worker is lost.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # One process per worker: the model uses every core; run more workers to scale.
        worker_pool="solo",
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": app.config["JOB_VISIBILITY_SECONDS"]},
        task_default_queue=app.config["CELERY_QUEUE"],
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    from . import tasks  # noqa: F401  (registers the tasks)

    return celery_app


class CeleryRunner:
    """Hands jobs to Celery workers; a failed hand-over leaves the job queued for later."""

    def __init__(self, app: Flask):
        self.app = app
        self.celery = celery_init_app(app)

    def start(self) -> None:
        pass

    def submit(self, ids: list[int], kind=None) -> None:
        from . import work
        from .tasks import task_for

        task = task_for(kind or work.MACHINE_TEXTS)
        for job_id in ids:
            try:
                task.delay(job_id)
            except Exception:
                log.exception(
                    "could not send job %s to the broker; a worker's sweep will pick it up",
                    job_id,
                )


class Janitor:
    """In a worker: take back jobs of dead workers and resend queued ones, every so often.

    At worker start every queued job is sent again (the broker may have lost
    messages while nobody listened); later sweeps resend the jobs they took
    back from dead workers, and jobs queued longer than JOB_RESEND_SECONDS.
    Repeats are harmless: a job already claimed is not run twice.
    """

    def __init__(self, app: Flask):
        self.app = app
        self._stop = threading.Event()
        self._resent: dict[str, dict[int, float]] = {}
        self.thread = threading.Thread(target=self._loop, name="srcflask-janitor", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sweep(self, first: bool = False) -> list[int]:
        from . import work

        return [i for kind in work.KINDS for i in self._sweep(kind, first)]

    def _sweep(self, kind, first: bool) -> list[int]:
        from . import work
        from .tasks import task_for

        resend_after = self.app.config["JOB_RESEND_SECONDS"]
        resent = self._resent.setdefault(kind.name, {})
        now = time.monotonic()
        with self.app.app_context():
            requeued = work.recover_stale(kind)
            waiting = work.pending_ids(kind, limit=1000, older_than=0 if first else resend_after)
        due = [i for i in waiting if now - resent.get(i, -resend_after) >= resend_after]
        ids = list(dict.fromkeys([*requeued, *(waiting if first else due)]))
        for job_id in ids:
            task_for(kind).delay(job_id)
            resent[job_id] = now
        return ids

    def _loop(self) -> None:
        interval = self.app.config["JOB_SWEEP_SECONDS"]
        first = True
        while True:
            try:
                self.sweep(first)
                first = False
            except Exception:
                log.exception("janitor sweep failed")
            if self._stop.wait(interval):
                return
