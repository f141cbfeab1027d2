"""Admin page for the limits of POST /api/v1/generate."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..extensions import db
from ..models import record_event
from ..models.api import ApiLimits
from ..models.types import utcnow
from . import bp
from .forms import ApiLimitsForm

FIELDS = (
    "max_prompt_characters",
    "max_new_tokens",
    "max_beams",
    "allow_sampling",
    "requests_per_minute",
)


@bp.route("/api", methods=["GET", "POST"])
def api_limits():
    limits = ApiLimits.current()
    form = ApiLimitsForm(obj=limits if request.method == "GET" else None)
    if form.validate_on_submit():
        before = {name: getattr(limits, name) for name in FIELDS}
        form.populate_obj(limits)
        limits.updated_at, limits.updated_by_id = utcnow(), current_user.id
        db.session.merge(limits)
        changed = {
            name: [before[name], getattr(limits, name)]
            for name in FIELDS
            if before[name] != getattr(limits, name)
        }
        record_event(
            "api.limits",
            actor=current_user,
            target_label="API generation limits",
            ip_address=request.remote_addr,
            **changed,
        )
        db.session.commit()
        flash("The API limits are saved; they apply to the next request.", "success")
        return redirect(url_for("admin.api_limits"), 303)
    return render_template("admin/api_limits.html", form=form, limits=limits), (
        422 if form.errors else 200
    )
