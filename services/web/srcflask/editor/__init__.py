"""Editors' pages: the documents assigned to them, and reviewing their machine text."""

from flask import Blueprint

from ..models import Role
from ..security import require_role

bp = Blueprint("editor", __name__, url_prefix="/editor")
bp.before_request(require_role(Role.EDITOR))

from . import routes  # noqa: E402,F401
