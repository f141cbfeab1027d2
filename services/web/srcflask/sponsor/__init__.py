"""Sponsors' pages: their documents and the machine text written for them."""

from flask import Blueprint

from ..models import Role
from ..security import require_role

bp = Blueprint("sponsor", __name__, url_prefix="/sponsor")
bp.before_request(require_role(Role.SPONSOR))

from . import routes  # noqa: E402,F401
