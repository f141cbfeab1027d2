"""Admin pages for fine-tuning: start a run, follow it, compare, promote, roll back."""

from __future__ import annotations

from dataclasses import replace

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from ..areas import admin_bp
from ..extensions import db
from ..ml.training import Hyperparameters
from ..models import ModelVersion, TrainingRun
from . import service as registry
from . import training
from .forms import TrainingForm


def training_page(form: TrainingForm, status: int = 200):
    return render_template(
        "admin/training.html",
        form=form,
        runs=training.all_runs(),
        usable=len(training.examples()),
        needed=current_app.config["TRAINING_MIN_REVIEWS"],
    ), status


@admin_bp.get("/training")
def training_runs():
    form = TrainingForm(registry.all_versions(), formdata=None)
    production = registry.production_version()
    if production is not None:
        form.parent.data = str(production.id)
    return training_page(form)


@admin_bp.post("/training")
def start_training():
    form = TrainingForm(registry.all_versions())
    if not form.validate_on_submit():
        return training_page(form, 422)
    parent = db.get_or_404(ModelVersion, int(form.parent.data))
    try:
        hyper = replace(
            Hyperparameters(), epochs=form.epochs.data, learning_rate=form.learning_rate.data
        )
        run = training.start(
            parent, form.name.data, hyper, actor=current_user, ip_address=request.remote_addr
        )
    except (ValueError, registry.RegistryError) as error:  # TrainingError is a ValueError
        flash(str(error), "error")
        return training_page(form, 422)
    flash(f"Training run {run.id} is queued: {parent.label} into {run.name}.", "success")
    return redirect(url_for("admin.training_run", run_id=run.id), 303)


@admin_bp.get("/training/<int:run_id>")
def training_run(run_id: int):
    run = db.get_or_404(TrainingRun, run_id)
    return render_template(
        "admin/training_run.html",
        run=run,
        comparison=(run.result.lineage or {}).get("comparison") if run.result else None,
    )


@admin_bp.get("/training/<int:run_id>/progress")
def training_progress(run_id: int):
    """The run's state, for the page to follow it without reloading."""
    run = db.get_or_404(TrainingRun, run_id)
    return jsonify(
        status=run.status.value,
        step=run.step,
        total_steps=run.total_steps,
        percent=run.percent,
        loss=run.loss,
        finished=run.status.finished,
    )


@admin_bp.post("/training/<int:run_id>/cancel")
def cancel_training(run_id: int):
    run = db.get_or_404(TrainingRun, run_id)
    try:
        training.cancel(run, actor=current_user, ip_address=request.remote_addr)
    except training.TrainingError as error:
        flash(str(error), "error")
    else:
        flash(f"Training run {run.id} is stopping; its last checkpoint is kept.", "success")
    return redirect(url_for("admin.training_run", run_id=run.id), 303)


@admin_bp.post("/models/rollback")
def roll_back_production():
    try:
        target = registry.roll_back(actor=current_user, ip_address=request.remote_addr)
    except registry.RegistryError as error:
        flash(str(error), "error")
    else:
        flash(f"production is back on {target.label}.", "success")
    return redirect(url_for("admin.models"), 303)
