from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user, logout_user

from ..accounts import service as accounts
from ..accounts.service import end_session, register, start_session
from ..extensions import limiter
from ..inputs import submitted_text
from ..models.users import authenticate, normalise_email
from ..security import any_status, home_endpoint, public, safe_next_url
from . import bp
from .forms import LoginForm, SignupForm

SIGNUP_RECEIVED = (
    "Thanks. If this email address can be used, the account has been created and is "
    "waiting for an admin's approval. Log in to follow its status."
)
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


@bp.route("/signup", methods=["GET", "POST"])
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
        register(
            name=form.name.data,
            email=form.email.data,
            organization=form.organization.data or "",
            password=form.password.data,
            role=form.role.data,
            ip_address=request.remote_addr,
        )
        flash(SIGNUP_RECEIVED, "success")
        return redirect(url_for("auth.login"), 303)
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
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
            # A fresh session at login: nothing planted before it survives (session fixation).
            session.clear()
            start_session(user, request.remote_addr, request.user_agent.string)
            login_user(user)
            target = safe_next_url(request.args.get("next")) or url_for(home_endpoint(user))
            return redirect(target, 303)
        form.form_errors.append(LOGIN_FAILED)
        status = 401
    elif form.errors:
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.post("/logout")
@public
def logout():
    if current_user.is_authenticated:
        end_session(current_user)
    logout_user()
    session.clear()
    flash("You have logged out.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.get("/status")
@any_status
def status():
    if current_user.is_approved:
        return redirect(url_for(home_endpoint(current_user)))
    return render_template("auth/status.html")
