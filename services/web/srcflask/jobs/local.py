"""The embedded runner: a generation thread, and a training thread when needed, in the web
process."""

from __future__ import annotations

import logging
import os
import threading

from flask import Flask

from ..registry import loads
from . import TASKS, work

log = logging.getLogger(__name__)


class LocalRunner:
    """Runs queued jobs in a background thread, a batch at a time.

    The database is the queue: `submit()` only wakes the thread, which then
    claims every queued job it can (up to GENERATION_BATCH_SIZE) and runs them
    together. At start, and every JOB_POLL_SECONDS after, it also takes back
    jobs whose worker died, so a restart loses nothing. Before all that it
    loads the production model, so the first job does not wait for it.
    """

    def __init__(self, app: Flask):
        self.app = app
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._training: threading.Thread | None = None
        self._training_wake = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._loop, name="srcflask-generation", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, ids: list[int], kind=None) -> None:
        if kind == "training":
            self._start_training()
            return
        if kind in TASKS:
            self._start_task(kind, ids)
            return
        self.start()
        work.queued_here.set()  # a running batch takes it at its next step
        self._wake.set()

    def _start_task(self, kind: str, ids: list[int]) -> None:
        """Other background work (a prompt tried, a model fetched): a thread of its own."""

        def run() -> None:
            with self.app.app_context():
                for row_id in ids:
                    try:
                        TASKS[kind](row_id)
                    except Exception:  # the row says what went wrong
                        log.exception("%s %s failed", kind, row_id)

        threading.Thread(target=run, name=f"srcflask-{kind}", daemon=True).start()

    def _start_training(self) -> None:
        """Fine-tuning runs in a thread of its own, so generation never waits for it."""
        with self._lock:
            if self._training is not None and self._training.is_alive():
                self._training_wake.set()
                return
            self._training = threading.Thread(
                target=self._train, name="srcflask-training", daemon=True
            )
            self._training.start()

    def _resume_training(self) -> None:
        """Start the training thread for runs left queued, or cut off by a restart."""
        from ..registry import training

        if self._training is not None and self._training.is_alive():
            return
        training.recover_stale()
        if training.queued_ids():
            self._start_training()

    def _train(self) -> None:
        from ..registry import training

        while not self._stop.is_set():
            self._training_wake.clear()
            try:
                with self.app.app_context():
                    ran = training.run_pending()
            except Exception:  # the rows say what is left to do
                log.exception("training runner error")
                ran = 0
            if not ran and not self._training_wake.wait(timeout=60):
                with self.app.app_context():
                    if not training.queued_ids():
                        return  # nothing left: the thread ends until the next run

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        poll = self.app.config["JOB_POLL_SECONDS"]
        lower_priority(self.app.config["WORKER_NICE"])
        # First the model, in this thread: requests go on; jobs queued meanwhile wait for it.
        with self.app.app_context():
            loads.preload_production()
        while not self._stop.is_set():
            try:
                with self.app.app_context():
                    work.recover_stale()
                    self._resume_training()
                    while not self._stop.is_set() and work.run_pending(max_batches=1):
                        pass
            except Exception:  # keep the thread alive; the rows say what is left to do
                log.exception("generation runner error")
            self._wake.wait(timeout=poll)
            self._wake.clear()


def lower_priority(nice: int) -> None:
    """Lower the calling thread's CPU priority by `nice` (0-19), so requests come first.

    On Linux a priority is a thread's own, and the threads it starts (PyTorch's)
    inherit it: the generation thread yields to the web's threads in the same
    process. Where that is not possible, generation runs at the normal priority.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), max(0, min(nice, 19)))
    except (AttributeError, OSError):
        log.info("could not lower the generation thread's priority")


class ManualRunner:
    """Runs nothing by itself: tests and `flask jobs run` call `work.run_pending()`."""

    def __init__(self) -> None:
        self.submitted: list[int] = []
        self.training: list[int] = []
        self.tasks: list[tuple[str, int]] = []

    def start(self) -> None:
        pass

    def submit(self, ids: list[int], kind=None) -> None:
        if kind == "training":
            self.training.extend(ids)
            return
        if kind in TASKS:
            self.tasks.extend((kind, row_id) for row_id in ids)
            return
        self.submitted.extend(ids)
