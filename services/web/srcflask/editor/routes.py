from __future__ import annotations

from flask import render_template

from . import bp


@bp.get("/")
def home():
    return render_template("editor/home.html")
