"""Sign-up and login forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length, ValidationError

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
