"""Sponsors' pages: writing documents, assigning editors, reading their machine text."""

from flask import Blueprint

from ..models import Role
from ..security import require_role

bp = Blueprint("sponsor", __name__, url_prefix="/sponsor")
bp.before_request(require_role(Role.SPONSOR))

from . import routes  # noqa: E402,F401
