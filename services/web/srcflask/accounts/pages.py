"""Account pages: /auth, /account, and the admins' pages for people and the audit trail.

Every rule, and every commit, is in `accounts.service`.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from ..areas import admin_bp
from ..extensions import db, limiter
from ..inputs import submitted_text
from ..models import AuditEvent, LifecycleError, Role, User, UserStatus
from ..models.users import (
    authenticate,
    hash_session_key,
    normalise_email,
    status_counts,
    user_search,
)
from ..pagination import paginate, requested_page
from ..security import any_status, home_endpoint, public, safe_next_url
from . import service as accounts
from .forms import LoginForm, PasswordForm, RoleForm, SignupForm, TokenForm
from .service import ConfirmationNeeded, change_role, decide, end_session, register, start_session

auth_bp = Blueprint("auth", __name__, url_prefix="/auth")
account_bp = Blueprint("account", __name__, url_prefix="/account")


# -- /auth: signing up, in and out -----------------------------------------------------


LOGIN_FAILED = "Wrong email or password."


def account_key() -> str:
    """Rate-limit key for the account named in the request, sent as a form or as JSON."""
    return "account:" + normalise_email(submitted_text("email"))


def account_and_address_key() -> str:
    """Rate-limit key for attempts on one account from one address."""
    return f"{account_key()}|{get_remote_address()}"


def login_failed(response) -> bool:
    return response.status_code != 303


def audit_lockout(scope: str):
    """An on-breach callback writing a login lockout to the audit log, once per lockout."""

    def on_breach(request_limit) -> None:
        limit = request_limit.limit
        # The first refused attempt writes the row; the rest of the window adds none.
        once = type(limit)(1, limit.multiples)
        if not request_limit.limiter.hit(once, "login-lockout", request_limit.key):
            return
        accounts.record_lockout(
            normalise_email(submitted_text("email")), request.remote_addr, scope, str(limit)
        )

    return on_breach


@auth_bp.route("/signup", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["RATELIMIT_SIGNUP_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["RATELIMIT_SIGNUP_PER_ACCOUNT"],
    key_func=account_key,
    methods=["POST"],
)
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = SignupForm()
    if form.validate_on_submit():
        user = register(
            name=form.name.data,
            email=form.email.data,
            organization=form.organization.data or "",
            password=form.password.data,
            role=form.role.data,
            ip_address=request.remote_addr,
        )
        sign_in(user)
        return redirect(url_for("auth.status"), 303)
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200


@auth_bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["RATELIMIT_LOGIN_PER_IP"], methods=["POST"])
# Wrong passwords for one account from one address: a stranger's failures lock out the
# stranger, not the owner logging in from elsewhere...
@limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN_PER_ACCOUNT_AND_IP"],
    key_func=account_and_address_key,
    methods=["POST"],
    deduct_when=login_failed,
    on_breach=audit_lockout("account_and_address"),
)
# ...and a higher ceiling for the account from everywhere, against guessing from many.
@limiter.limit(
    lambda: current_app.config["RATELIMIT_LOGIN_PER_ACCOUNT"],
    key_func=account_key,
    methods=["POST"],
    deduct_when=login_failed,
    on_breach=audit_lockout("account"),
)
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is not None:
            sign_in(user)
            target = safe_next_url(request.args.get("next")) or url_for(home_endpoint(user))
            return redirect(target, 303)
        form.form_errors.append(LOGIN_FAILED)
        status = 401
    elif form.errors:
        status = 422
    return render_template("auth/login.html", form=form), status


def sign_in(user: User) -> None:
    # A fresh session: nothing planted before it survives (session fixation).
    session.clear()
    start_session(user, request.remote_addr, request.user_agent.string)
    login_user(user)


@auth_bp.post("/logout")
@public
def logout():
    if current_user.is_authenticated:
        end_session(current_user)
    logout_user()
    session.clear()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"), 303)


@auth_bp.get("/status")
@any_status
def status():
    if current_user.is_approved:
        return redirect(url_for(home_endpoint(current_user)))
    return render_template("auth/status.html")


# -- /account: one's own sessions, password and tokens ---------------------------------


def account_page(password_form: PasswordForm | None = None, status: int = 200):
    current_key = hash_session_key(current_user.session_key or "")
    return render_template(
        "account/home.html",
        password_form=password_form or PasswordForm(formdata=None),
        sessions=accounts.sessions_of(current_user),
        current_key=current_key,
    ), status


@account_bp.get("/")
def home():
    return account_page()


@account_bp.post("/password")
def change_password():
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(
                current_user,
                form.current_password.data,
                form.new_password.data,
                request.remote_addr,
            )
        except LifecycleError as error:
            form.current_password.errors = [str(error)]
            return account_page(form, 422)
        flash("Your password is changed. Every other session of yours has ended.", "success")
        return redirect(url_for("account.home"), 303)
    return account_page(form, 422)


@account_bp.post("/sessions/end-all")
def end_all_sessions():
    accounts.end_every_session(current_user, request.remote_addr)
    logout_user()
    session.clear()
    flash("You are logged out everywhere, on this device too. Log in again to go on.", "info")
    return redirect(url_for("auth.login"), 303)


# The secret of a token just made, kept for the one page that shows it after the redirect.
NEW_TOKEN = "new_token"  # noqa: S105  (a session key, not a secret)


@account_bp.route("/tokens", methods=["GET", "POST"])
def tokens():
    form = TokenForm()
    status = 200
    if form.validate_on_submit():
        try:
            secret = accounts.issue_token(
                current_user, form.name.data, form.expires_in_days.data, request.remote_addr
            )
        except LifecycleError as error:
            form.form_errors.append(str(error))
            status = 422
        else:
            # Post/Redirect/Get: reloading the page shows it, and never makes another token.
            session[NEW_TOKEN] = secret
            return redirect(url_for("account.tokens"), 303)
    elif request.method == "POST":
        status = 422
    secret = session.pop(NEW_TOKEN, None) if request.method == "GET" else None
    response = make_response(
        render_template(
            "account/tokens.html", form=form, tokens=accounts.tokens_of(current_user), secret=secret
        ),
        status,
    )
    if secret:
        response.headers["Cache-Control"] = "no-store"  # the secret stays out of caches
    return response


@account_bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    token = accounts.own_token(current_user, token_id)
    if token is None:
        abort(404)
    if accounts.revoke_own_token(token, request.remote_addr):
        flash(f"The token “{token.name}” is revoked; programs using it are refused now.", "success")
    return redirect(url_for("account.tokens"), 303)


# -- /admin: people and the audit trail ------------------------------------------------


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


@admin_bp.get("/", endpoint="home")
def admin_home():
    recent = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(8)).all()
    return render_template("admin/home.html", counts=status_counts(), recent=recent)


@admin_bp.get("/users")
def users():
    status = request.args.get("status", UserStatus.PENDING.value)
    if status != "all" and status not in UserStatus._value2member_map_:
        abort(400, description=f"Unknown status {status!r}.")
    search = request.args.get("q", "").strip()[:100]
    query = user_search(None if status == "all" else UserStatus(status), search).options(
        joinedload(User.approved_by), joinedload(User.duplicate_of)
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


@admin_bp.post("/users/<int:user_id>/<any(approve, reject, suspend, reinstate):action>")
def decide_status(user_id: int, action: str):
    user = db.get_or_404(User, user_id)
    try:
        decide(action, user, current_user, request.remote_addr)
    except LifecycleError as error:
        flash(str(error), "error")
    else:
        flash(DONE_MESSAGES[action].format(name=user.name), "success")
    return back_to_users()


@admin_bp.post("/users/<int:user_id>/role")
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
        flash(f"{user.name} is now {role.with_article}.", "success")
    return back_to_users()


@admin_bp.get("/audit")
def audit():
    query = select(AuditEvent).order_by(AuditEvent.id.desc())
    action = request.args.get("action", "").strip()[:64]
    if action:
        query = query.where(AuditEvent.action.startswith(action, autoescape=True))
    page = paginate(query, requested_page(), 50)
    return render_template("admin/audit.html", page=page, action=action)
