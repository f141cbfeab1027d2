"""Admin pages for experiments: the list with the start form, one experiment's results,
and the confirm steps of starting, stopping and promoting."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..areas import admin_bp
from ..extensions import db
from ..ml.settings import PRESET_LABELS
from ..models import Arm, ModelVersion
from ..registry import service as registry
from . import rule
from . import service as experiments
from .forms import OWN_SETTINGS, ConfirmForm, StartExperimentForm


def list_page(form: StartExperimentForm, status: int = 200):
    return render_template(
        "admin/experiments.html",
        experiments=experiments.all_experiments(),
        running=experiments.running(),
        production=registry.production_version(),
        form=form,
    ), status


@admin_bp.get("/experiments")
def experiments_list():
    form = StartExperimentForm(registry.all_versions(), formdata=None)
    wanted = request.args.get("challenger", "")
    if wanted in {choice.value for choice in form.challenger.choices}:
        form.challenger.data = wanted  # "Start an experiment with this version"
    return list_page(form)


@admin_bp.post("/experiments")
def start_experiment():
    form = StartExperimentForm(registry.all_versions())
    if not form.validate_on_submit():
        return list_page(form, 422)
    challenger = db.get_or_404(ModelVersion, int(form.challenger.data))
    preset = form.preset.data or None
    try:
        experiment = experiments.start(
            challenger,
            preset,
            form.share.data / 100,
            auto_promote=form.auto_promote.data,
            actor=current_user,
            ip_address=request.remote_addr,
            confirmed=form.confirm.data,
        )
    except experiments.ConfirmationNeeded:
        return render_template(
            "admin/confirm_experiment.html",
            action="start",
            form=form,
            challenger=challenger,
            preset_label=PRESET_LABELS.get(preset or OWN_SETTINGS, "its own settings"),
            production=registry.production_version(),
        )
    except experiments.ExperimentError as error:
        flash(f"Not started: {error}", "error")
        return list_page(form, error.status)
    flash(
        f"Experiment {experiment.id} started: {experiment.arm_label(Arm.CHALLENGER)} writes "
        f"for about {experiment.share:.0%} of documents from now on.",
        "success",
    )
    return redirect(url_for("admin.experiment", experiment_id=experiment.id), 303)


def _experiment_or_404(experiment_id: int):
    experiment = experiments.get(experiment_id)
    if experiment is None:
        abort(404, description="No such experiment.")
    return experiment


@admin_bp.get("/experiments/<int:experiment_id>")
def experiment(experiment_id: int):
    found = _experiment_or_404(experiment_id)
    return render_template(
        "admin/experiment.html",
        experiment=found,
        results=experiments.results(found),
        rule=rule,
        form=ConfirmForm(formdata=None),
    )


def _confirmed_action(experiment_id: int, action: str):
    found = _experiment_or_404(experiment_id)
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, description="The form expired: go back to the experiment and try again.")
    act = experiments.stop if action == "stop" else experiments.promote
    try:
        act(found, actor=current_user, ip_address=request.remote_addr, confirmed=form.confirm.data)
    except experiments.ConfirmationNeeded:
        return render_template(
            "admin/confirm_experiment.html",
            action=action,
            experiment=found,
            results=experiments.results(found),
            form=form,
        )
    except experiments.ExperimentError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.experiment", experiment_id=found.id), 303)
    if action == "stop":
        flash(
            f"Experiment {found.id} stopped: production writes every machine text again.",
            "success",
        )
    else:
        flash(
            f"{found.challenger.label} is production now. The Models page can roll it back.",
            "success",
        )
    return redirect(url_for("admin.experiment", experiment_id=found.id), 303)


@admin_bp.post("/experiments/<int:experiment_id>/stop")
def stop_experiment(experiment_id: int):
    return _confirmed_action(experiment_id, "stop")


@admin_bp.post("/experiments/<int:experiment_id>/promote")
def promote_experiment(experiment_id: int):
    return _confirmed_action(experiment_id, "promote")
