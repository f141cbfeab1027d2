"""The review form: accept, save an edit, or reject the machine text."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import SelectChoice, SelectField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..forms import normalise_newlines
from ..models.documents import BODY_MAX


class ReviewForm(FlaskForm):
    decision = SelectField(
        "Decision",
        choices=[
            SelectChoice("accept", "Accept"),
            SelectChoice("edit", "Save edit"),
            SelectChoice("reject", "Reject"),
        ],
        validators=[DataRequired()],
    )
    text = TextAreaField(
        "Machine text",
        filters=[normalise_newlines],
        validators=[Length(max=BODY_MAX, message=f"At most {BODY_MAX:,} characters.")],
    )
