"""Forms of the experiment pages."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, SelectChoice, SelectField
from wtforms.validators import InputRequired, NumberRange

from ..ml.settings import PRESET_LABELS
from .service import SHARE_RANGE

OWN_SETTINGS = ""


class StartExperimentForm(FlaskForm):
    """Start comparing a challenger with production; sent again from the confirm page."""

    challenger = SelectField("Challenger version", choices=[])
    preset = SelectField(
        "Challenger's settings",
        choices=[SelectChoice(OWN_SETTINGS, "The version's own settings")]
        + [SelectChoice(name, label) for name, label in PRESET_LABELS.items()],
        default=OWN_SETTINGS,
    )
    share = IntegerField(
        "Share of documents the challenger writes for (%)",
        default=50,
        validators=[
            InputRequired(),
            NumberRange(
                min=round(SHARE_RANGE[0] * 100),
                max=round(SHARE_RANGE[1] * 100),
                message="Give a share between %(min)s and %(max)s percent.",
            ),
        ],
    )
    auto_promote = BooleanField("Make the challenger production as soon as the rule says better")
    # Set by the confirm page's button.
    confirm = BooleanField("Yes, start it")

    def __init__(self, versions, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.challenger.choices = [SelectChoice(str(v.id), v.label) for v in versions]


class ConfirmForm(FlaskForm):
    """Stop or promote: the confirm page sends `confirm`."""

    confirm = BooleanField("Yes")
