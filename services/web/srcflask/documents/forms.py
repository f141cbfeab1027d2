"""Document forms: writing a document, choosing its editor, reviewing machine text."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from ..forms import normalise_newlines, strip
from ..models.documents import BODY_MAX, TITLE_MAX


def optional_id(value) -> int | None:
    if value in (None, "", "none"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # never an editor: refused with a message by the service


def optional_number(value) -> int | None:
    """A revision number from a hidden field; None when missing or not a number."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def editor_choices(editors, current=None) -> list[SelectChoice]:
    """Nobody, every approved editor, and the document's own editor if no longer approved."""
    choices = [SelectChoice("", "Nobody yet")] + [
        SelectChoice(str(editor.id), f"{editor.name} ({editor.email})") for editor in editors
    ]
    if current is not None and current not in editors:
        choices.append(
            SelectChoice(str(current.id), f"{current.name} ({current.email}, no longer approved)")
        )
    return choices


def within_body_limit(text: str | None) -> None:
    over = len(text or "") - BODY_MAX
    if over > 0:
        raise ValidationError(
            f"The document is {len(text):,} characters long; the most is {BODY_MAX:,}. "
            f"Shorten it by {over:,} characters. Nothing was saved; your text is kept here."
        )


class DocumentForm(FlaskForm):
    title = StringField(
        "Title", filters=[strip], validators=[DataRequired(), Length(max=TITLE_MAX)]
    )
    body = TextAreaField(
        "Document",
        filters=[normalise_newlines],
        validators=[lambda form, field: within_body_limit(field.data)],
        description=f"Up to {BODY_MAX:,} characters. Each save writes a new revision, and the "
        "model writes machine text for it in the background.",
        # No maxlength: a browser would cut a long paste silently. The page counts instead.
        render_kw={"data-count-max": BODY_MAX},
    )
    editor_id = SelectField("Editor", coerce=optional_id, validate_choice=False)
    # The revision the edit started from (edits only), so a newer save is not undone unseen.
    base_revision = HiddenField(filters=[optional_number])


class EditorForm(FlaskForm):
    editor_id = SelectField("Editor", coerce=optional_id, validate_choice=False)


class ReviewForm(FlaskForm):
    decision = SelectField(
        "Decision",
        choices=[
            SelectChoice("accept", "Accept"),
            SelectChoice("edit", "Save edit"),
            SelectChoice("keep", "Keep up to here"),
            SelectChoice("reject", "Reject"),
        ],
        validators=[DataRequired()],
    )
    # Decision `keep`: the character the kept part ends at (one of the sentence ends).
    keep_until = HiddenField("Keep up to", filters=[optional_id])
    # Which of the machine text's choices is reviewed (0: the model's first).
    chosen = HiddenField("Text", filters=[optional_id])
    text = TextAreaField(
        "Machine text",
        filters=[normalise_newlines],
        validators=[Length(max=BODY_MAX, message=f"At most {BODY_MAX:,} characters.")],
    )


class ImportForm(FlaskForm):
    file = FileField(
        "File",
        validators=[FileRequired(message="Choose a .csv or .jsonl file.")],
        description="CSV with a header line, or JSON Lines (one object per line), with the "
        "fields title, body and editor_email (optional). At most 500 documents and 1 MiB.",
    )
