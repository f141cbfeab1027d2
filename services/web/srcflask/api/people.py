"""Admin user management: list accounts, approve, reject, suspend, reinstate, change roles."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint

from ..accounts.schemas import RoleChangeSchema, UserPageSchema, UserQuerySchema, UserSchema
from ..accounts.service import ConfirmationNeeded, change_role, decide
from ..extensions import db
from ..models import LifecycleError, Role, User, UserStatus
from ..models.users import user_search
from ..pagination import paginate
from .common import client_ip, errors, refuse, require_role

blp = Blueprint(
    "Users", __name__, url_prefix="/api/v1", description="Accounts and their approval (admins)"
)


def user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        refuse(404, f"No user {user_id}.")
    return user


@blp.route("/users", methods=["GET"])
@blp.arguments(UserQuerySchema, location="query")
@blp.response(200, UserPageSchema)
@errors(blp, 422)
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


@blp.route("/users/<int:user_id>/approve", methods=["POST"])
@blp.response(200, UserSchema)
@errors(blp, 404, 409)
def approve(user_id: int):
    """Let a pending or rejected account in."""
    return _decide("approve", user_id)


@blp.route("/users/<int:user_id>/reject", methods=["POST"])
@blp.response(200, UserSchema)
@errors(blp, 404, 409)
def reject(user_id: int):
    """Refuse a pending account."""
    return _decide("reject", user_id)


@blp.route("/users/<int:user_id>/suspend", methods=["POST"])
@blp.response(200, UserSchema)
@errors(blp, 404, 409)
def suspend(user_id: int):
    """Shut an approved account out (its sessions and tokens stop working at once)."""
    return _decide("suspend", user_id)


@blp.route("/users/<int:user_id>/reinstate", methods=["POST"])
@blp.response(200, UserSchema)
@errors(blp, 404, 409)
def reinstate(user_id: int):
    """Let a suspended account back in."""
    return _decide("reinstate", user_id)


@blp.route("/users/<int:user_id>/role", methods=["POST"])
@blp.arguments(RoleChangeSchema)
@blp.response(200, UserSchema)
@errors(blp, 404, 409, 422)
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
