from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..accounts.service import ConfirmationNeeded, change_role, decide
from ..documents.routes import render_document_list
from ..extensions import db
from ..models import AuditEvent, LifecycleError, Role, User, UserStatus
from ..models.users import status_counts, user_search
from ..pagination import paginate, requested_page
from ..security import safe_next_url
from . import bp
from .forms import RoleForm

DONE_MESSAGES = {
    "approve": "{name} is approved and can now use srcflask.",
    "reject": "{name}'s sign-up is rejected.",
    "suspend": "{name} is suspended and has been logged out everywhere.",
    "reinstate": "{name} is reinstated.",
}


def users_page_to_return_to() -> str:
    return safe_next_url(request.form.get("next")) or url_for("admin.users")


def back_to_users():
    return redirect(users_page_to_return_to(), 303)


@bp.get("/")
def home():
    recent = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(8)).all()
    return render_template("admin/home.html", counts=status_counts(), recent=recent)


@bp.get("/users")
def users():
    status = request.args.get("status", UserStatus.PENDING.value)
    if status != "all" and status not in UserStatus._value2member_map_:
        abort(400, description=f"Unknown status {status!r}.")
    search = request.args.get("q", "").strip()[:100]
    query = user_search(None if status == "all" else UserStatus(status), search).options(
        joinedload(User.approved_by)
    )
    page = paginate(query, requested_page(), current_app.config["PAGE_SIZE"])
    return render_template(
        "admin/users.html",
        page=page,
        status=status,
        search=search,
        counts=status_counts(),
        role_form=RoleForm(),
        roles=list(Role),
    )


@bp.post("/users/<int:user_id>/<any(approve, reject, suspend, reinstate):action>")
def decide_status(user_id: int, action: str):
    user = db.get_or_404(User, user_id)
    try:
        decide(action, user, current_user, request.remote_addr)
    except LifecycleError as error:
        flash(str(error), "error")
    else:
        flash(DONE_MESSAGES[action].format(name=user.name), "success")
    return back_to_users()


@bp.post("/users/<int:user_id>/role")
def change_user_role(user_id: int):
    user = db.get_or_404(User, user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, description="Choose one of the roles sponsor, editor or admin.")
    role = Role(form.role.data)
    try:
        change_role(user, role, current_user, request.remote_addr, confirmed=form.confirm.data)
    except ConfirmationNeeded:
        return render_template(
            "admin/confirm_admin.html", user=user, back=users_page_to_return_to()
        )
    except LifecycleError as error:
        flash(str(error), "error")
    else:
        flash(f"{user.name} is now {role.label.lower()}.", "success")
    return back_to_users()


@bp.get("/audit")
def audit():
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    action = request.args.get("action", "").strip()[:64]
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    page = paginate(query, requested_page(), 50)
    return render_template("admin/audit.html", page=page, action=action)


@bp.get("/documents")
def documents():
    return render_document_list("admin/documents.html")
