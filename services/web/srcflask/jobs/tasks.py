"""Celery tasks. Pass ids, never ORM objects."""

from __future__ import annotations

from celery import shared_task
from flask import current_app

from . import work


@shared_task(name="srcflask.generate_machine_texts", acks_late=True, reject_on_worker_lost=True)
def generate_machine_texts(machine_text_id: int) -> int:
    """Run this job and any others waiting, as one batch; return how many ran here."""
    ids = work.claim([machine_text_id], current_app.config["GENERATION_BATCH_SIZE"])
    work.run_claimed(ids)
    return len(ids)
