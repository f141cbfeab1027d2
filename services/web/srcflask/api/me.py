"""GET /api/v1/me: who the token belongs to."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint

from .common import api_token, errors
from .schemas import MeSchema

blp = Blueprint("Me", __name__, url_prefix="/api/v1", description="The caller")


@blp.route("/me", methods=["GET"])
@blp.response(200, MeSchema)
@errors(blp)
def me():
    """Who you are: the token's owner, with their role and status."""
    token = api_token()
    return {
        "id": current_user.id,
        "name": current_user.name,
        "email": current_user.email,
        "organization": current_user.organization,
        "role": current_user.role.value,
        "status": current_user.status.value,
        "token": None
        if token is None
        else {
            "name": token.name,
            "prefix": token.prefix,
            "expires_at": token.expires_at,
        },
    }
