"""The account page's forms: a new password, and a new API token."""

from __future__ import annotations

from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, ValidationError

from ..auth.passwords import MAX_LENGTH, password_problem
from ..forms import strip

MAX_DAYS = 365


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


class PasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password", validators=[DataRequired(), Length(max=MAX_LENGTH)]
    )
    new_password = PasswordField("New password", validators=[DataRequired()])
    confirm_password = PasswordField(
        "Confirm the new password",
        validators=[
            DataRequired(),
            EqualTo("new_password", message="The new passwords do not match."),
        ],
    )

    def validate_new_password(self, field: PasswordField) -> None:
        problem = password_problem(
            field.data or "", email=current_user.email, name=current_user.name
        )
        if problem:
            raise ValidationError(problem)
