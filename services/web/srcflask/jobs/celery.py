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

from celery import Celery, Task, bootsteps
from flask import Flask
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)

# The longest one connection to the broker, or one command on it, may take.
BROKER_TIMEOUT_SECONDS = 5


def celery_init_app(app: Flask) -> Celery:
    class FlaskTask(Task):
        # A database that does not answer (restarting) is no reason to drop the message:
        # its row is still queued. Try again later, backing off; repeats are harmless.
        autoretry_for = (OperationalError,)
        retry_backoff = True
        retry_backoff_max = 60
        max_retries = 10

        def __call__(self, *args, **kwargs):
            with app.app_context():
                return self.run(*args, **kwargs)

    class ResendAfterConnecting(bootsteps.StartStopStep):
        """Each time a worker (re)connects to the broker, its janitor resends every queued job.

        Saves made while the broker was down could not send their jobs (the rows
        stay queued); without this they would wait JOB_RESEND_SECONDS.
        """

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def start(self, consumer) -> None:
            janitor = app.extensions.get("srcflask.janitor")
            if janitor is not None:
                janitor.resend_all()

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
        broker_transport_options={
            "visibility_timeout": app.config["JOB_VISIBILITY_SECONDS"],
            # A save sends its job inside the request: a broker that is down or hung must
            # cost it seconds, not the request (by default a hung Redis blocks it forever).
            "socket_connect_timeout": BROKER_TIMEOUT_SECONDS,
            "socket_timeout": BROKER_TIMEOUT_SECONDS,
            "max_retries": 1,
        },
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_max": 0.5},
        task_default_queue=app.config["CELERY_QUEUE"],
    )
    celery_app.steps["consumer"].add(ResendAfterConnecting)
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
        from . import TASKS, work
        from .tasks import task_for

        if kind in TASKS:
            from .tasks import run_task

            # Raises when the broker cannot take it: the caller says so on the row.
            for row_id in ids:
                run_task.delay(kind, row_id)
            return
        if kind == "training":
            from .tasks import train_model

            for run_id in ids:
                try:
                    train_model.apply_async((run_id,), queue=self.app.config["TRAINING_QUEUE"])
                except Exception:
                    log.exception("could not send training run %s to the broker", run_id)
            return
        task = task_for(kind or work.MACHINE_TEXTS)
        for position, job_id in enumerate(ids):
            try:
                task.delay(job_id)
            except Exception:
                # The broker is down: the rest would fail too, each after its own timeout.
                log.exception(
                    "could not send jobs %s to the broker; they stay queued, and workers "
                    "send them again when they reconnect",
                    ids[position:],
                )
                return


class Janitor:
    """In a worker: take back jobs of dead workers and resend queued ones, every so often.

    At worker start, and each time the worker connects to the broker again,
    every queued job is sent again (the broker may have lost messages while
    nobody listened, or saves could not send theirs); other sweeps resend the
    jobs they took back from dead workers, and jobs queued longer than
    JOB_RESEND_SECONDS. Repeats are harmless: a job already claimed is not run twice.
    """

    def __init__(self, app: Flask):
        self.app = app
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._resend_all = threading.Event()
        self._resend_all.set()
        self._resent: dict[str, dict[int, float]] = {}
        self.thread = threading.Thread(target=self._loop, name="srcflask-janitor", daemon=True)
        app.extensions["srcflask.janitor"] = self

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def resend_all(self) -> None:
        """Sweep now, and send every queued job again."""
        self._resend_all.set()
        self._wake.set()

    def sweep(self, everything: bool = False) -> list[int]:
        """Take back jobs of dead workers and resend what is due (`everything` queued)."""
        from . import work

        ids = [i for kind in work.KINDS for i in self._sweep(kind, everything)]
        self._sweep_training(everything)
        return ids

    def _sweep_training(self, everything: bool) -> list[int]:
        """Training runs: take back those of dead workers; resend queued ones when due."""
        from ..registry import training
        from .tasks import train_model

        resend_after = self.app.config["JOB_RESEND_SECONDS"]
        resent = self._resent.setdefault("training", {})
        now = time.monotonic()
        with self.app.app_context():
            requeued = training.recover_stale()
            waiting = training.queued_ids(older_than=0 if everything else resend_after)
        due = [i for i in waiting if now - resent.get(i, -resend_after) >= resend_after]
        ids = list(dict.fromkeys([*requeued, *(waiting if everything else due)]))
        for run_id in ids:
            train_model.apply_async((run_id,), queue=self.app.config["TRAINING_QUEUE"])
            resent[run_id] = now
        return ids

    def _sweep(self, kind, everything: bool) -> list[int]:
        from . import work
        from .tasks import task_for

        resend_after = self.app.config["JOB_RESEND_SECONDS"]
        resent = self._resent.setdefault(kind.name, {})
        now = time.monotonic()
        with self.app.app_context():
            requeued = work.recover_stale(kind)
            waiting = work.pending_ids(
                kind, limit=1000, older_than=0 if everything else resend_after
            )
        due = [i for i in waiting if now - resent.get(i, -resend_after) >= resend_after]
        ids = list(dict.fromkeys([*requeued, *(waiting if everything else due)]))
        for job_id in ids:
            task_for(kind).delay(job_id)
            resent[job_id] = now
        return ids

    def _loop(self) -> None:
        interval = self.app.config["JOB_SWEEP_SECONDS"]
        while not self._stop.is_set():
            everything = self._resend_all.is_set()
            self._resend_all.clear()
            try:
                self.sweep(everything)
            except Exception:
                log.exception("janitor sweep failed")
                if everything:
                    self._resend_all.set()  # still owed: at the next sweep
            self._wake.wait(interval)
            self._wake.clear()
