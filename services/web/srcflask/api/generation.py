"""POST /api/v1/generate and GET /api/v1/jobs/{id}: short generations for programs.

The request runs the model at once when this process has it free (200), and
otherwise queues a job (202 with its id); GET /jobs/{id} follows it. The
limits (prompt length, new tokens, beams, sampling, requests per minute) are
the ones admins set on /admin/api.
"""

from __future__ import annotations

import logging

from flask import current_app, url_for
from flask_login import current_user
from flask_smorest import Blueprint

from .. import jobs, registry
from ..extensions import db, limiter
from ..jobs import work
from ..ml.settings import DEFAULT_PRESET, PRESETS, GenerationSettings, SettingsError
from ..models import GenerationJob, Role
from ..models.api import ApiLimits
from .common import api_token, errors, refuse
from .schemas import GenerateSchema, JobSchema

log = logging.getLogger(__name__)

blp = Blueprint(
    "Generation", __name__, url_prefix="/api/v1", description="Generate text for a prompt"
)


def requests_per_minute() -> str:
    return f"{ApiLimits.current().requests_per_minute} per minute"


def caller_key() -> str:
    """Rate-limit key: the person, whichever of their tokens (or their browser) asks.

    Keyed on the owner, so minting another token does not bring another budget.
    """
    return f"user:{current_user.id}"


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
        refuse_field(error.setting, error.message)
    if settings.max_new_tokens > limits.max_new_tokens:
        refuse_field("max_new_tokens", f"must be at most {limits.max_new_tokens} here")
    if settings.strategy == "beam" and settings.num_beams > limits.max_beams:
        refuse_field("num_beams", f"must be at most {limits.max_beams} here")
    if settings.strategy == "sample" and not limits.allow_sampling:
        refuse_field("strategy", "sampling is turned off here; use beam or greedy")
    return settings


def refuse_field(name: str, message: str):
    from flask_smorest import abort

    abort(
        422, message=f"settings.{name}: {message}", errors={"json": {"settings": {name: [message]}}}
    )


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


@blp.route("/generate", methods=["POST"])
@limiter.limit(requests_per_minute, key_func=caller_key)
@blp.arguments(GenerateSchema)
@blp.response(200, JobSchema, description="Written at once")
@blp.alt_response(
    202,
    schema=JobSchema,
    success=True,
    description="The model is busy: queued; follow GET /jobs/{id}",
    headers={"Location": {"description": "The job's URL", "schema": {"type": "string"}}},
)
@errors(blp, 413, 422, 429)
def generate(data):
    """Continue a short prompt with the production model."""
    limits = ApiLimits.current()
    if len(data["prompt"]) > limits.max_prompt_characters:
        refuse(422, f"The prompt is longer than {limits.max_prompt_characters} characters.")
    settings = checked_settings(data["settings"], limits)
    token = api_token()
    job = GenerationJob(
        user=current_user,
        token_id=token.id if token else None,
        prompt=data["prompt"],
        settings=settings.to_dict(),
        max_new_tokens=settings.max_new_tokens,
    )
    db.session.add(job)
    db.session.commit()
    job_id = job.id
    if run_now_if_free(job_id):
        return db.session.get(GenerationJob, job_id)
    jobs.submit([job_id], kind=work.API_JOBS)
    location = url_for("Generation.get_job", job_id=job_id)
    return db.session.get(GenerationJob, job_id), 202, {"Location": location}


@blp.route("/jobs/<int:job_id>", methods=["GET"])
@blp.response(200, JobSchema)
@errors(blp, 404)
def get_job(job_id: int):
    """A generation job: its status and, once done, the text."""
    job = db.session.get(GenerationJob, job_id)
    if job is None or (job.user_id != current_user.id and current_user.role is not Role.ADMIN):
        refuse(404, f"No job {job_id} of yours.")
    return job
