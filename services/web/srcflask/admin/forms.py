"""Admin forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Regexp

from ..ml.engine import DEFAULT_SYSTEM_PROMPT, PROMPT_FORMATS
from ..ml.settings import GenerationSettings
from ..models import Role
from ..registry.service import ALIAS_PATTERN

# Trying a prompt runs in the request, so keep it short.
MAX_TRY_TOKENS = 128
PRESET_LABELS = {
    "greedy": "Greedy (fastest)",
    "original": "Beam search, 5 beams (as machine text)",
    "creative": "Sampling (varied)",
}


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(role.value, role.label) for role in Role])
    # Granting admin is confirmed on a second page that sets this.
    confirm = BooleanField("Yes, make this person an admin")
    next = HiddenField()


class AliasForm(FlaskForm):
    alias = StringField(
        "Alias",
        default="production",
        validators=[
            DataRequired(),
            Regexp(ALIAS_PATTERN, message="Start with a letter; use a-z, 0-9, '_' and '-'."),
        ],
    )


class TryPromptForm(FlaskForm):
    prompt = TextAreaField("Prompt", validators=[DataRequired(), Length(max=2000)])
    preset = SelectField(
        "Settings",
        choices=[SelectChoice(name, label) for name, label in PRESET_LABELS.items()],
        default="greedy",
    )
    max_new_tokens = IntegerField(
        "New tokens", default=40, validators=[NumberRange(min=1, max=MAX_TRY_TOKENS)]
    )


class PromptFormatForm(FlaskForm):
    prompt_format = SelectField(
        "Prompt format",
        choices=[
            SelectChoice(name, f"{name.capitalize()}: {meaning}")
            for name, meaning in PROMPT_FORMATS.items()
        ],
    )
    system_prompt = TextAreaField(
        "System line (chat and continue formats)",
        validators=[Length(max=2000)],
        description="Leave empty for the default: " + DEFAULT_SYSTEM_PROMPT,
    )


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
