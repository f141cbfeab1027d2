"""POST /api/v1/generate and GET /api/v1/jobs/{id}: short generations for programs.

The request runs the model at once when this process has it free (200), and
otherwise queues a job (202 with its id); GET /jobs/{id} follows it. The
limits (prompt length, new tokens, beams, sampling, requests per minute) are
the ones admins set on /admin/api.
"""

from __future__ import annotations

import logging

from flask import url_for
from flask_login import current_user
from flask_smorest import Blueprint

from ..api.common import api_token, errors, refuse
from ..extensions import limiter
from ..models.api import ApiLimits
from . import service
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


def refuse_field(name: str, message: str):
    from flask_smorest import abort

    abort(
        422, message=f"settings.{name}: {message}", errors={"json": {"settings": {name: [message]}}}
    )


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
    try:
        job, finished = service.request_generation(
            current_user, api_token(), data["prompt"], data["settings"]
        )
    except service.GenerationRefused as refusal:
        if refusal.setting:
            refuse_field(refusal.setting, refusal.message)
        refuse(422, refusal.message)
    if finished:
        return job
    return job, 202, {"Location": url_for("Generation.get_job", job_id=job.id)}


@blp.route("/jobs/<int:job_id>", methods=["GET"])
@blp.response(200, JobSchema)
@errors(blp, 404)
def get_job(job_id: int):
    """A generation job: its status and, once done, the text."""
    job = service.job_of(current_user, job_id)
    if job is None:
        refuse(404, f"No job {job_id} of yours.")
    return job
