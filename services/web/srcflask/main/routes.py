from __future__ import annotations

from flask import jsonify, redirect, url_for
from flask_login import current_user

from ..security import home_endpoint, public
from . import bp
from .readiness import readiness_checks


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


@bp.get("/readyz")
@public
def readyz():
    """Readiness: 200 only when the database, the broker and the production model are usable."""
    checks = readiness_checks()
    failing = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "ready" if not failing else "not ready",
        "checks": {name: problem or "ok" for name, problem in checks.items()},
    }
    return jsonify(body), 503 if failing else 200
