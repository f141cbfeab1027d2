"""The admins' page for the limits of POST /api/v1/generate (/admin/api)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..areas import admin_bp
from ..models.api import ApiLimits
from .forms import ApiLimitsForm
from .service import FIELDS, update_limits


@admin_bp.route("/api", methods=["GET", "POST"])
def api_limits():
    limits = ApiLimits.current()
    form = ApiLimitsForm(obj=limits if request.method == "GET" else None)
    if form.validate_on_submit():
        update_limits(
            {name: getattr(form, name).data for name in FIELDS}, current_user, request.remote_addr
        )
        flash("The API limits are saved; they apply to the next request.", "success")
        return redirect(url_for("admin.api_limits"), 303)
    return render_template("admin/api_limits.html", form=form, limits=limits), (
        422 if form.errors else 200
    )
