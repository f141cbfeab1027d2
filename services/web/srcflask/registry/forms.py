"""Forms of the model registry's admin pages."""

from __future__ import annotations

import math

from flask_wtf import FlaskForm
from wtforms import (
    DateField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from ..ml.engine import DEFAULT_SYSTEM_PROMPT, PROMPT_FORMATS
from ..ml.settings import PRESET_LABELS
from ..ml.training import Hyperparameters
from .service import ALIAS_PATTERN, NAME_PATTERN

# Trying a prompt is meant to answer in seconds, so keep it short.
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


class ReviewFilterForm(FlaskForm):
    """Which reviewed pairs to download (a GET form: it changes nothing)."""

    class Meta:
        csrf = False

    version = SelectField("Model version", choices=[], default="")
    since = DateField("Reviewed from", validators=[Optional()])
    until = DateField("Reviewed until", validators=[Optional()])

    def __init__(self, versions, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.version.choices = [SelectChoice("", "Every version")] + [
            SelectChoice(str(version.id), version.label) for version in versions
        ]

    def validate_until(self, field):
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date is before the start date.")


class TrainingForm(FlaskForm):
    """Fine-tune a version on the reviewed machine text."""

    parent = SelectField("Version to fine-tune", choices=[])
    name = StringField(
        "Name of the new model",
        validators=[
            DataRequired(),
            Regexp(
                NAME_PATTERN,
                message="Use a-z, 0-9, '.', '_' and '-', starting with a letter or digit.",
            ),
        ],
    )
    epochs = IntegerField(
        "Epochs", default=Hyperparameters.epochs, validators=[NumberRange(min=1, max=20)]
    )
    learning_rate = FloatField(
        "Learning rate",
        default=Hyperparameters.learning_rate,
        validators=[NumberRange(min=1e-6, max=0.1)],
    )

    def __init__(self, versions, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent.choices = [SelectChoice(str(v.id), v.label) for v in versions]

    def validate_learning_rate(self, field):
        if field.data is not None and not math.isfinite(field.data):
            raise ValidationError("Give a number, such as 0.0002.")
