"""Admin pages for the model registry: versions and how they fare in review, the production
alias, the catalog, the actions that run in the background (trying a prompt, measuring
speed, fetching a catalog model), and the reviewed pairs to download."""

from __future__ import annotations

from flask import (
    abort,
    flash,
    get_template_attribute,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user

from ..areas import admin_bp
from ..downloads import download
from ..extensions import db
from ..ml import catalog
from ..ml.engine import DEFAULT_SYSTEM_PROMPT, PROMPT_FORMATS
from ..ml.quality import BenchmarkError
from ..models import ModelTask, ModelTaskKind, ModelVersion
from ..security import wants_json
from . import metrics, model_tasks, reviews
from . import service as registry
from .charts import review_chart
from .forms import AliasForm, PromptFormatForm, ReviewFilterForm, TryPromptForm

TASKS_TEMPLATE = "admin/_model_tasks.html"


def models_page(status: int = 200, **context):
    versions = registry.all_versions()
    try:
        quality_documents = len(registry.quality_documents())
    except (OSError, BenchmarkError):
        quality_documents = "the"
    tasks = model_tasks.shown(current_user)
    context.setdefault("try_form", None)
    context.setdefault("try_version_id", None)
    review_metrics = metrics.version_metrics([version.id for version in versions])
    return render_template(
        "admin/models.html",
        versions=versions,
        review_metrics=review_metrics,
        rollback_to=registry.rollback_target(),
        review_chart=review_chart,
        production=registry.production_version(),
        tasks=tasks,
        # After a prompt was tried, its form holds that prompt again.
        try_forms={
            about: TryPromptForm(formdata=None, data=task.inputs)
            for (kind, about), task in tasks.items()
            if kind == "try"
        },
        blank_try_form=TryPromptForm(formdata=None),
        default_system_prompt=DEFAULT_SYSTEM_PROMPT,
        prompt_formats=PROMPT_FORMATS,
        evaluations=registry.latest_evaluations(),
        quality_documents=quality_documents,
        catalog=catalog.CATALOG.values(),
        default_model=catalog.DEFAULT_MODEL,
        fetched=registry.fetched_versions(),
        **context,
    ), status


@admin_bp.get("/models")
def models():
    return models_page()


def task_box(task: ModelTask) -> str:
    """The part of the page that shows `task`, beside the button that started it."""
    if task.kind is ModelTaskKind.FETCH:
        entry = catalog.CATALOG[task.catalog_name]
        fetched = registry.fetched_versions().get(entry.name)
        return get_template_attribute(TASKS_TEMPLATE, "fetch_box")(entry, task, fetched)
    name = "try_box" if task.kind is ModelTaskKind.TRY else "speed_box"
    return get_template_attribute(TASKS_TEMPLATE, name)(task.version, task)


def started(task: ModelTask, anchor: str):
    """A started action: its state for the page's script, or back to the page beside it."""
    if wants_json():
        body = {"task": model_tasks.state(task) | {"html": task_box(task)}}
        url = url_for("admin.model_task", task_id=task.id)
        return jsonify(body), 202, {"Location": url}
    return redirect(url_for("admin.models", _anchor=anchor), 303)


def refused(status: int, message: str, fields: dict | None = None):
    """An action that cannot start: the reason, as JSON for the script or on the page."""
    if wants_json():
        error = {"code": "conflict" if status == 409 else "invalid", "message": message}
        if fields:
            error["fields"] = fields
        return jsonify(error=error), status
    flash(message, "error")
    return models_page(status)


@admin_bp.post("/models/<int:version_id>/speed")
def measure_model_speed(version_id: int):
    version = db.get_or_404(ModelVersion, version_id)
    try:
        task = model_tasks.start_speed(version, actor=current_user, ip_address=request.remote_addr)
    except model_tasks.TaskRefused as error:
        return refused(409, str(error))
    return started(task, f"speed-{version.id}")


@admin_bp.post("/models/catalog/<string:name>/fetch")
def fetch_catalog_model(name: str):
    if name not in catalog.CATALOG:
        abort(404, description=f"The catalog has no model called {name[:100]!r}.")
    try:
        task = model_tasks.start_fetch(name, actor=current_user, ip_address=request.remote_addr)
    except model_tasks.TaskRefused as error:
        return refused(409, str(error))
    return started(task, f"catalog-{name}")


@admin_bp.get("/models/tasks/<int:task_id>")
def model_task(task_id: int):
    """A model action's state, and the part of the page that shows it, for the script."""
    model_tasks.recover_stale()
    task = model_tasks.get(task_id)
    if task is None or (task.kind is not ModelTaskKind.FETCH and task.version is None):
        abort(404, description="No such model action.")
    return jsonify(model_tasks.state(task) | {"html": task_box(task)})


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
        if wants_json():
            problems = "; ".join(
                f"{form[name].label.text}: {' '.join(errors)}"
                for name, errors in form.errors.items()
            )
            return refused(422, f"Not tried. {problems}", form.errors)
        return models_page(422, try_form=form, try_version_id=version.id)
    try:
        task = model_tasks.start_try(
            version,
            form.prompt.data,
            form.preset.data,
            form.max_new_tokens.data,
            actor=current_user,
            ip_address=request.remote_addr,
        )
    except model_tasks.TaskRefused as error:
        return refused(409, str(error))
    return started(task, f"try-{version.id}")


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
