"""Admin forms."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectChoice, SelectField

from ..models import Role


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=[SelectChoice(role.value, role.label) for role in Role])
    # Granting admin is confirmed on a second page that sets this.
    confirm = BooleanField("Yes, make this person an admin")
    next = HiddenField()
