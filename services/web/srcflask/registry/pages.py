"""Admin pages for the model registry: versions and how they fare in review, the production
alias, trying a prompt, and the reviewed pairs to download."""

from __future__ import annotations

import time

from flask import abort, flash, redirect, render_template, request, send_file, url_for
from flask_login import current_user

from ..areas import admin_bp
from ..downloads import download
from ..extensions import db
from ..ml.engine import DEFAULT_SYSTEM_PROMPT, PROMPT_FORMATS, ModelLoadError, PromptError
from ..ml.quality import BenchmarkError
from ..ml.settings import PRESETS, SettingsError
from ..models import ModelVersion
from . import metrics, reviews
from . import service as registry
from .charts import review_chart
from .forms import AliasForm, PromptFormatForm, ReviewFilterForm, TryPromptForm


def models_page(status: int = 200, **context):
    versions = registry.all_versions()
    try:
        quality_documents = len(registry.quality_documents())
    except (OSError, BenchmarkError):
        quality_documents = "the"
    context.setdefault("try_form", None)
    context.setdefault("try_version_id", None)
    context.setdefault("try_result", None)
    context.setdefault("try_waited", 0.0)
    review_metrics = metrics.version_metrics([version.id for version in versions])
    return render_template(
        "admin/models.html",
        versions=versions,
        review_metrics=review_metrics,
        rollback_to=registry.rollback_target(),
        review_chart=review_chart,
        production=registry.production_version(),
        blank_try_form=TryPromptForm(formdata=None),
        default_system_prompt=DEFAULT_SYSTEM_PROMPT,
        prompt_formats=PROMPT_FORMATS,
        evaluations=registry.latest_evaluations(),
        quality_documents=quality_documents,
        **context,
    ), status


@admin_bp.get("/models")
def models():
    return models_page()


@admin_bp.post("/models/<int:version_id>/speed")
def measure_model_speed(version_id: int):
    version = db.get_or_404(ModelVersion, version_id)
    try:
        measured = registry.measure_speed(version, actor=current_user)
    except (ModelLoadError, ValueError, OSError) as error:  # ValueError: unsafe or missing files
        flash(f"Cannot measure {version.label}: {error}", "error")
    else:
        flash(
            registry.speed_sentence(version.label, measured),
            "success" if measured["kept"] else "warning",
        )
    return redirect(url_for("admin.models", _anchor=f"version-{version.id}"), 303)


@admin_bp.get("/models/<int:version_id>/license")
def model_license(version_id: int):
    """The license terms kept beside a version's weights (third-party HTML, sandboxed)."""
    version = db.get_or_404(ModelVersion, version_id)
    path = registry.license_path(version)
    if path is None:
        abort(404)
    mimetype = "text/html" if path.suffix in (".html", ".htm") else "text/plain"
    response = send_file(path, mimetype=mimetype)
    # Someone else's page: no scripts, no forms, no requests back to srcflask.
    response.headers["Content-Security-Policy"] = (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:"
    )
    return response


@admin_bp.post("/models/<int:version_id>/alias")
def set_model_alias(version_id: int):
    version = db.get_or_404(ModelVersion, version_id)
    form = AliasForm()
    if not form.validate_on_submit():
        flash(f"Alias not set: {'; '.join(form.alias.errors)}", "error")
        return redirect(url_for("admin.models"), 303)
    previous = registry.set_alias(
        version, form.alias.data, actor=current_user, ip_address=request.remote_addr
    )
    moved = f" (it was on {previous.label})" if previous and previous.id != version.id else ""
    flash(f"{form.alias.data} now points at {version.label}{moved}.", "success")
    return redirect(url_for("admin.models"), 303)


@admin_bp.post("/models/<int:version_id>/prompt-format")
def set_prompt_format(version_id: int):
    version = db.get_or_404(ModelVersion, version_id)
    form = PromptFormatForm()
    if not form.validate_on_submit():
        flash(
            "Prompt format not changed: choose chat or raw; the system line is at most "
            "2,000 characters.",
            "error",
        )
        return redirect(url_for("admin.models"), 303)
    try:
        registry.update_prompt_format(
            version,
            form.prompt_format.data,
            form.system_prompt.data,
            actor=current_user,
            ip_address=request.remote_addr,
        )
    except registry.RegistryError as error:
        flash(str(error), "error")
    else:
        flash(f"{version.label} now uses the {version.prompt_format} prompt format.", "success")
    return redirect(url_for("admin.models"), 303)


@admin_bp.post("/models/<int:version_id>/try")
def try_model(version_id: int):
    version = db.get_or_404(ModelVersion, version_id)
    form = TryPromptForm()
    if not form.validate_on_submit():
        return models_page(422, try_form=form, try_version_id=version.id)
    settings = PRESETS[form.preset.data].replace(max_new_tokens=form.max_new_tokens.data)
    asked = time.perf_counter()
    try:
        # A short call: it runs between two steps of a batch of documents, not after it.
        generator = registry.generator_for(version)
        [result] = generator.generate([form.prompt.data], settings, short=True)
    except (PromptError, SettingsError, ModelLoadError, ValueError) as error:
        form.prompt.errors = [*form.prompt.errors, str(error)]
        return models_page(422, try_form=form, try_version_id=version.id)
    return models_page(
        try_form=form,
        try_version_id=version.id,
        try_result=result,
        try_waited=max(0.0, time.perf_counter() - asked - result.seconds),
    )


# -- reviewed pairs ----------------------------------------------------------------


def _review_filter(form: ReviewFilterForm) -> reviews.ReviewFilter:
    return reviews.ReviewFilter(
        version_id=int(form.version.data) if form.version.data else None,
        since=form.since.data,
        until=form.until.data,
    )


def reviews_page(form: ReviewFilterForm, status: int = 200):
    matching = reviews.count(_review_filter(form)) if not form.errors else None
    return render_template("admin/reviews.html", form=form, matching=matching), status


@admin_bp.get("/reviews", endpoint="reviews")
def reviews_export_page():
    form = ReviewFilterForm(registry.all_versions(), formdata=request.args or None)
    if request.args and not form.validate():
        return reviews_page(form, 400)
    return reviews_page(form)


@admin_bp.get("/reviews/export.<any(csv, jsonl):kind>")
def export_reviews(kind: str):
    """The reviewed pairs the filter selects, streamed as CSV or JSONL."""
    form = ReviewFilterForm(registry.all_versions(), formdata=request.args)
    if not form.validate():
        return reviews_page(form, 400)
    rows = reviews.reviewed_pairs(_review_filter(form))
    return download(rows, reviews.FIELDS, kind, "srcflask-reviews")
