"""GET /api/v1/me (the caller) and /api/v1/users (people, for admins)."""

from __future__ import annotations

from dataclasses import dataclass

from flask_login import current_user
from flask_smorest import Blueprint

from ..api.common import api_token, client_ip, errors, refuse, require_role
from ..extensions import db
from ..models import ApiToken, LifecycleError, Role, User, UserStatus
from ..models.users import user_search
from ..pagination import paginate
from .schemas import MeSchema, RoleChangeSchema, UserPageSchema, UserQuerySchema, UserSchema
from .service import ConfirmationNeeded, change_role, decide

me_api = Blueprint("Me", __name__, url_prefix="/api/v1", description="The caller")


@dataclass(frozen=True)
class Caller:
    """Who is calling: the user, and the token the request came with (None for a browser)."""

    user: User
    token: ApiToken | None


@me_api.route("/me", methods=["GET"])
@me_api.response(200, MeSchema)
@errors(me_api)
def me():
    """Who you are: the token's owner, with their role and status."""
    return Caller(current_user._get_current_object(), api_token())


people_api = Blueprint(
    "Users", __name__, url_prefix="/api/v1", description="Accounts and their approval (admins)"
)


def user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        refuse(404, f"No user {user_id}.")
    return user


@people_api.route("/users", methods=["GET"])
@people_api.arguments(UserQuerySchema, location="query")
@people_api.response(200, UserPageSchema)
@errors(people_api, 422)
def list_users(query):
    """Accounts, newest first; filter by status, search names and emails (admins)."""
    require_role(Role.ADMIN)
    status = UserStatus(query["status"]) if query.get("status") else None
    page = paginate(user_search(status, query.get("q", "")), query["page"], query["per_page"])
    return page


def _decide(action: str, user_id: int) -> User:
    require_role(Role.ADMIN)
    user = user_or_404(user_id)
    try:
        decide(action, user, current_user, client_ip())
    except LifecycleError as error:
        refuse(409, str(error))
    return user


@people_api.route("/users/<int:user_id>/approve", methods=["POST"])
@people_api.response(200, UserSchema)
@errors(people_api, 404, 409)
def approve(user_id: int):
    """Let a pending or rejected account in."""
    return _decide("approve", user_id)


@people_api.route("/users/<int:user_id>/reject", methods=["POST"])
@people_api.response(200, UserSchema)
@errors(people_api, 404, 409)
def reject(user_id: int):
    """Refuse a pending account."""
    return _decide("reject", user_id)


@people_api.route("/users/<int:user_id>/suspend", methods=["POST"])
@people_api.response(200, UserSchema)
@errors(people_api, 404, 409)
def suspend(user_id: int):
    """Shut an approved account out (its sessions and tokens stop working at once)."""
    return _decide("suspend", user_id)


@people_api.route("/users/<int:user_id>/reinstate", methods=["POST"])
@people_api.response(200, UserSchema)
@errors(people_api, 404, 409)
def reinstate(user_id: int):
    """Let a suspended account back in."""
    return _decide("reinstate", user_id)


@people_api.route("/users/<int:user_id>/role", methods=["POST"])
@people_api.arguments(RoleChangeSchema)
@people_api.response(200, UserSchema)
@errors(people_api, 404, 409, 422)
def set_role(data, user_id: int):
    """Give an account another role; granting admin needs `confirm_admin: true`."""
    require_role(Role.ADMIN)
    user = user_or_404(user_id)
    try:
        change_role(
            user, Role(data["role"]), current_user, client_ip(), confirmed=data["confirm_admin"]
        )
    except ConfirmationNeeded:
        refuse(409, "Granting admin needs confirm_admin: true.")
    except LifecycleError as error:
        refuse(409, str(error))
    return user
