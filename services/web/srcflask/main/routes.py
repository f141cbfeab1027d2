from __future__ import annotations

from flask import jsonify, redirect, url_for
from flask_login import current_user

from ..security import home_endpoint, public
from . import bp


@bp.get("/")
@public
def index():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for(home_endpoint(current_user)))


@bp.get("/healthz")
@public
def healthz():
    """Liveness: the process answers. Readiness of its dependencies is /readyz."""
    return jsonify(status="ok")
