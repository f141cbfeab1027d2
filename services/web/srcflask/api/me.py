"""GET /api/v1/me: who the token belongs to."""

from __future__ import annotations

from dataclasses import dataclass

from flask_login import current_user
from flask_smorest import Blueprint

from ..accounts.schemas import MeSchema
from ..models import ApiToken, User
from .common import api_token, errors

blp = Blueprint("Me", __name__, url_prefix="/api/v1", description="The caller")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, and the token the request came with (None for a browser)."""

    user: User
    token: ApiToken | None


@blp.route("/me", methods=["GET"])
@blp.response(200, MeSchema)
@errors(blp)
def me():
    """Who you are: the token's owner, with their role and status."""
    return Caller(current_user._get_current_object(), api_token())
