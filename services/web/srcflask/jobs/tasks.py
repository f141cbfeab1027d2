"""Celery tasks. Pass ids, never ORM objects."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from . import work


def _run(kind: work.JobKind, job_id: int) -> int:
    ids = work.claim(kind, [job_id], current_app.config["GENERATION_BATCH_SIZE"])
    work.run_claimed(kind, ids)
    return len(ids)


@shared_task(name="srcflask.generate_machine_texts", acks_late=True, reject_on_worker_lost=True)
def generate_machine_texts(machine_text_id: int) -> int:
    """Run this machine text and any others waiting, as one batch; return how many ran."""
    return _run(work.MACHINE_TEXTS, machine_text_id)


@shared_task(name="srcflask.run_generation_job", acks_late=True, reject_on_worker_lost=True)
def run_generation_job(job_id: int) -> int:
    """Run this API generation job and any others waiting; return how many ran here."""
    return _run(work.API_JOBS, job_id)


def task_for(kind: work.JobKind):
    return generate_machine_texts if kind is work.MACHINE_TEXTS else run_generation_job


@shared_task(name="srcflask.train_model", acks_late=True, reject_on_worker_lost=True)
def train_model(run_id: int) -> bool:
    """Fine-tune a training run (routed to the training queue); resume it if it was cut off."""
    from ..registry import training

    training.recover_stale()
    if not training.claim(run_id):
        return False
    training.run(run_id)
    return True


@shared_task(name="srcflask.run_task", acks_late=True, reject_on_worker_lost=True)
def run_task(kind: str, row_id: int) -> object:
    """Run one row of a registered kind of background work (`jobs.register_task`)."""
    from . import TASKS

    return TASKS[kind](row_id)
