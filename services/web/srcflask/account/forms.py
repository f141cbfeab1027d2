"""The form that creates an API token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, StringField
from wtforms.validators import DataRequired, Length, NumberRange

MAX_DAYS = 365


def strip(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        filters=[strip],
        validators=[DataRequired(), Length(max=100)],
        description="What the token is for, e.g. “nightly import script”.",
    )
    expires_in_days = IntegerField(
        "Expires after (days)",
        default=90,
        validators=[
            DataRequired(message="Give a number of days from 1 to 365."),
            NumberRange(
                min=1, max=MAX_DAYS, message=f"Give a number of days from 1 to {MAX_DAYS}."
            ),
        ],
    )
