from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, logout_user

from ..accounts import service as accounts
from ..models import LifecycleError
from ..models.users import hash_session_key
from . import bp
from .forms import PasswordForm, TokenForm


def account_page(password_form: PasswordForm | None = None, status: int = 200):
    current_key = hash_session_key(current_user.session_key or "")
    return render_template(
        "account/home.html",
        password_form=password_form or PasswordForm(formdata=None),
        sessions=accounts.sessions_of(current_user),
        current_key=current_key,
    ), status


@bp.get("/")
def home():
    return account_page()


@bp.post("/password")
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


@bp.post("/sessions/end-all")
def end_all_sessions():
    accounts.end_every_session(current_user, request.remote_addr)
    logout_user()
    session.clear()
    flash("You are logged out everywhere, on this device too. Log in again to go on.", "info")
    return redirect(url_for("auth.login"), 303)


@bp.route("/tokens", methods=["GET", "POST"])
def tokens():
    form = TokenForm()
    secret = None
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
            form = TokenForm(formdata=None)
    elif request.method == "POST":
        status = 422
    return render_template(
        "account/tokens.html", form=form, tokens=accounts.tokens_of(current_user), secret=secret
    ), status


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    token = accounts.own_token(current_user, token_id)
    if token is None:
        abort(404)
    if accounts.revoke_own_token(token, request.remote_addr):
        flash(f"The token “{token.name}” is revoked; programs using it are refused now.", "success")
    return redirect(url_for("account.tokens"), 303)
