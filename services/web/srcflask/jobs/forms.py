"""The form of the API generation limits."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField
from wtforms.validators import NumberRange

from ..ml.settings import GenerationSettings


class ApiLimitsForm(FlaskForm):
    max_prompt_characters = IntegerField(
        "Longest prompt (characters)", validators=[NumberRange(min=1, max=20_000)]
    )
    max_new_tokens = IntegerField(
        "Most new tokens per request",
        validators=[NumberRange(*GenerationSettings.RANGES["max_new_tokens"])],
    )
    max_beams = IntegerField(
        "Most beams (1 allows greedy only)",
        validators=[NumberRange(*GenerationSettings.RANGES["num_beams"])],
    )
    allow_sampling = BooleanField("Allow sampling (temperature, top-p, top-k)")
    requests_per_minute = IntegerField(
        "Requests per minute, per person", validators=[NumberRange(min=1, max=10_000)]
    )
