from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ApiToken, record_event
from ..models.types import utcnow
from . import bp
from .forms import TokenForm


def my_tokens() -> list[ApiToken]:
    return db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == current_user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()


@bp.route("/tokens", methods=["GET", "POST"])
def tokens():
    form = TokenForm()
    secret = None
    status = 200
    if form.validate_on_submit():
        token, secret = ApiToken.issue(current_user, form.name.data, form.expires_in_days.data)
        db.session.add(token)
        db.session.flush()
        record_event(
            "token.create",
            actor=current_user,
            target_user=current_user,
            ip_address=request.remote_addr,
            token=token.name,
            prefix=token.prefix,
            expires_at=token.expires_at.isoformat(timespec="seconds"),
        )
        db.session.commit()
        form = TokenForm(formdata=None)
    elif request.method == "POST":
        status = 422
    return render_template(
        "account/tokens.html", form=form, tokens=my_tokens(), secret=secret
    ), status


@bp.post("/tokens/<int:token_id>/revoke")
def revoke_token(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        record_event(
            "token.revoke",
            actor=current_user,
            target_user=current_user,
            ip_address=request.remote_addr,
            token=token.name,
            prefix=token.prefix,
        )
        db.session.commit()
        flash(f"The token “{token.name}” is revoked; programs using it are refused now.", "success")
    return redirect(url_for("account.tokens"), 303)
