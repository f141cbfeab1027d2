"""The role areas: /sponsor, /editor and /admin, each open to approved people of one role.

The gate of each area is declared once, here. Features add their pages to
these blueprints: documents to all three, accounts, jobs and the registry to
/admin. The factory registers them after every feature has added its pages.
"""

from __future__ import annotations

from flask import Blueprint, Flask

from .models import Role
from .security import require_role

sponsor_bp = Blueprint("sponsor", __name__, url_prefix="/sponsor")
sponsor_bp.before_request(require_role(Role.SPONSOR))

editor_bp = Blueprint("editor", __name__, url_prefix="/editor")
editor_bp.before_request(require_role(Role.EDITOR))

admin_bp = Blueprint("admin", __name__, url_prefix="/admin")
admin_bp.before_request(require_role(Role.ADMIN))


def init_app(app: Flask) -> None:
    for blueprint in (admin_bp, sponsor_bp, editor_bp):
        app.register_blueprint(blueprint)
