"""API v1 schemas of generation jobs: what every job reports, and POST /generate."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..api.schemas import StringThrough, Text, enum_values, not_blank
from ..ml.settings import STRATEGIES, GenerationSettings
from ..models.jobs import JobStatus


class JobResultSchema(ma.Schema):
    """What every generation job reports: machine texts and API generations alike."""

    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(enum_values(JobStatus)))
    text = fields.String(required=True, allow_none=True)
    model_version = StringThrough(required=True, allow_none=True, attribute="model_version.label")
    settings = fields.Dict(required=True)
    error = fields.String(required=True, allow_none=True)
    prompt_tokens = fields.Integer(required=True, allow_none=True)
    generated_tokens = fields.Integer(required=True, allow_none=True)
    truncated = fields.Boolean(required=True)
    queued_at = fields.DateTime(required=True)
    started_at = fields.DateTime(required=True, allow_none=True)
    finished_at = fields.DateTime(required=True, allow_none=True)


def setting_range(name: str) -> validate.Range:
    """The allowed range of a generation setting, as ml.settings declares it."""
    low, high = GenerationSettings.RANGES[name]
    return validate.Range(min=low, max=high)


class SettingsSchema(ma.Schema):
    """Generation settings; ranges are checked again against the admins' limits."""

    strategy = fields.String(validate=validate.OneOf(STRATEGIES))
    max_new_tokens = fields.Integer(strict=True, validate=setting_range("max_new_tokens"))
    num_beams = fields.Integer(strict=True, validate=setting_range("num_beams"))
    no_repeat_ngram_size = fields.Integer(
        strict=True, validate=setting_range("no_repeat_ngram_size")
    )
    early_stopping = fields.Boolean(truthy={True}, falsy={False})
    temperature = fields.Float(validate=setting_range("temperature"), allow_nan=False)
    top_p = fields.Float(validate=setting_range("top_p"), allow_nan=False)
    top_k = fields.Integer(strict=True, validate=setting_range("top_k"))
    seed = fields.Integer(strict=True, allow_none=True, validate=setting_range("seed"))
    repetition_penalty = fields.Float(validate=setting_range("repetition_penalty"), allow_nan=False)


class GenerateSchema(ma.Schema):
    prompt = Text(
        required=True,
        validate=[validate.Length(min=1), not_blank],
        metadata={"description": "The text to continue"},
    )
    settings = fields.Nested(SettingsSchema, load_default=dict)


class JobSchema(JobResultSchema):
    """Dumps a GenerationJob."""

    prompt = fields.String(required=True)
