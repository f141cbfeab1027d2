"""Admins' pages: account approval, roles, the audit trail and the models."""

from flask import Blueprint

from ..models import Role
from ..security import require_role

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(require_role(Role.ADMIN))

from . import api_routes, model_routes, routes  # noqa: E402,F401
