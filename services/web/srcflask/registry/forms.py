"""Forms of the model registry's admin pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Regexp

from ..ml.engine import DEFAULT_SYSTEM_PROMPT, PROMPT_FORMATS
from ..ml.settings import PRESET_LABELS
from .service import ALIAS_PATTERN

# Trying a prompt runs in the request, so keep it short.
MAX_TRY_TOKENS = 128


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
