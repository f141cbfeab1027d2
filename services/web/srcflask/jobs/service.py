"""Generation for programs (POST /api/v1/generate) and the limits admins set on it.

The only module of `jobs` that commits on behalf of a request; the runners
(`work`, `local`, `celery`) commit the jobs' own progress.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app

from ..extensions import db
from ..ml.settings import DEFAULT_PRESET, PRESETS, GenerationSettings, SettingsError
from ..models import ApiToken, GenerationJob, Role, User, record_event
from ..models.api import ApiLimits
from ..models.types import utcnow
from ..registry import service as registry
from . import submit, work

log = logging.getLogger(__name__)

FIELDS = (
    "max_prompt_characters",
    "max_new_tokens",
    "max_beams",
    "allow_sampling",
    "requests_per_minute",
)


def update_limits(values: dict[str, Any], admin: User, ip_address: str | None) -> dict:
    """Save new limits, audited with what changed; return the changes as {name: [old, new]}."""
    limits = ApiLimits.current()
    before = {name: getattr(limits, name) for name in FIELDS}
    for name in FIELDS:
        if name in values:
            setattr(limits, name, values[name])
    limits.updated_at, limits.updated_by_id = utcnow(), admin.id
    db.session.merge(limits)
    changed = {
        name: [before[name], getattr(limits, name)]
        for name in FIELDS
        if before[name] != getattr(limits, name)
    }
    record_event(
        "api.limits",
        actor=admin,
        target_label="API generation limits",
        ip_address=ip_address,
        **changed,
    )
    db.session.commit()
    return changed


class GenerationRefused(ValueError):
    """A generation request outside the limits; `setting` names the setting at fault."""

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.message = message
        self.setting = setting


def checked_settings(requested: dict, limits: ApiLimits) -> GenerationSettings:
    """The default preset with the caller's changes, within the admins' limits."""
    preset = PRESETS[DEFAULT_PRESET]
    base = preset.replace(
        max_new_tokens=min(preset.max_new_tokens, limits.max_new_tokens),
        num_beams=min(preset.num_beams, max(limits.max_beams, 2)),
    )
    if limits.max_beams < 2 and "strategy" not in requested:
        base = base.replace(strategy="greedy", num_beams=1)
    try:
        settings = base.replace(**requested)
    except SettingsError as error:
        raise GenerationRefused(error.message, error.setting) from error
    if settings.max_new_tokens > limits.max_new_tokens:
        raise GenerationRefused(f"must be at most {limits.max_new_tokens} here", "max_new_tokens")
    if settings.strategy == "beam" and settings.num_beams > limits.max_beams:
        raise GenerationRefused(f"must be at most {limits.max_beams} here", "num_beams")
    if settings.strategy == "sample" and not limits.allow_sampling:
        raise GenerationRefused("sampling is turned off here; use beam or greedy", "strategy")
    if settings.best_of > max(limits.max_beams, 1):
        raise GenerationRefused(f"must be at most {max(limits.max_beams, 1)} here", "best_of")
    return settings


def request_generation(
    user: User, token: ApiToken | None, prompt: str, requested: dict
) -> tuple[GenerationJob, bool]:
    """Queue a generation of `prompt`, and run it at once if this process has the model free.

    Returns the job and whether it is finished. Raises GenerationRefused when the
    prompt or the settings are outside the admins' limits.
    """
    limits = ApiLimits.current()
    if len(prompt) > limits.max_prompt_characters:
        raise GenerationRefused(
            f"The prompt is longer than {limits.max_prompt_characters} characters."
        )
    settings = checked_settings(requested, limits)
    job = GenerationJob(
        user=user,
        token_id=token.id if token else None,
        prompt=prompt,
        settings=settings.to_dict(),
        max_new_tokens=settings.max_new_tokens,
    )
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    ran = run_now_if_free(job_id)
    if not ran:
        submit([job_id], kind=work.API_JOBS)
    return db.session.get(GenerationJob, job_id), ran


def run_now_if_free(job_id: int) -> bool:
    """Run the job in this request if this process holds the model and it is idle."""
    if current_app.config["JOBS_MODE"] == "celery":
        return False  # the model lives in the workers
    version = registry.production_version()
    if version is None:
        return False
    try:
        generator = registry.generator_for(version)
    except Exception:
        # The job is queued instead; the runner records why the model could not load.
        log.exception("cannot load %s to run a job at once", version.label)
        return False
    with generator.reserved() as free:
        if not free:
            return False
        work.run_claimed(work.API_JOBS, work.claim(work.API_JOBS, [job_id], limit=1))
        return True


def job_of(user: User, job_id: int) -> GenerationJob | None:
    """The generation job `job_id` if `user` may read it: theirs, or any for an admin."""
    job = db.session.get(GenerationJob, job_id)
    if job is None or (job.user_id != user.id and user.role is not Role.ADMIN):
        return None
    return job
