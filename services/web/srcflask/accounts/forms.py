"""Account forms: signing up and in, tokens, passwords, and the role an admin gives."""

from __future__ import annotations

from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length, NumberRange, ValidationError

from ..forms import strip
from ..models import Role
from .passwords import MAX_LENGTH, password_problem


class SignupForm(FlaskForm):
    name = StringField("Full name", filters=[strip], validators=[DataRequired(), Length(max=100)])
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )
    organization = StringField("Organization", filters=[strip], validators=[Length(max=120)])
    password = PasswordField("Password", validators=[DataRequired()])
    confirm_password = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )
    role = SelectField(
        "I am signing up as",
        choices=[
            SelectChoice(Role.SPONSOR.value, "Sponsor: I write documents"),
            SelectChoice(Role.EDITOR.value, "Editor: I review machine text"),
        ],
        validators=[DataRequired()],
    )

    def validate_password(self, field: PasswordField) -> None:
        problem = password_problem(
            field.data or "", email=self.email.data or "", name=self.name.data or ""
        )
        if problem:
            raise ValidationError(problem)


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_LENGTH)])


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


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(role.value, role.label) for role in Role])
    # Granting admin is confirmed on a second page that sets this.
    confirm = BooleanField("Yes, make this person an admin")
    next = HiddenField()
