"""Experiments, for admins: list, start, read the results, stop, promote."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint

from ..api.common import client_ip, errors, refuse, require_role
from ..models import Role
from ..registry import service as registry
from . import service as experiments
from .schemas import (
    ConfirmSchema,
    ExperimentListSchema,
    ExperimentResultsSchema,
    ExperimentStartSchema,
)

blp = Blueprint(
    "Experiments",
    __name__,
    url_prefix="/api/v1",
    description="Champion and challenger: model versions compared on live documents (admins)",
)


def _experiment(experiment_id: int):
    found = experiments.get(experiment_id)
    if found is None:
        refuse(404, f"No experiment {experiment_id}.")
    return found


def _refuse(error: experiments.ExperimentError):
    if isinstance(error, experiments.ConfirmationNeeded):
        refuse(409, f"{error} Send confirm: true.")
    refuse(error.status, str(error))


@blp.route("/experiments", methods=["GET"])
@blp.response(200, ExperimentListSchema)
@errors(blp)
def list_experiments():
    """Every experiment, newest first."""
    require_role(Role.ADMIN)
    return {"items": experiments.all_experiments()}


@blp.route("/experiments", methods=["POST"])
@blp.arguments(ExperimentStartSchema)
@blp.response(201, ExperimentResultsSchema)
@errors(blp, 404, 409, 422)
def start_experiment(data):
    """Start comparing production with a challenger version and/or preset (needs confirm)."""
    require_role(Role.ADMIN)
    try:
        challenger = registry.find_version(data["challenger"])
    except registry.RegistryError:
        refuse(404, f"No model version {data['challenger']!r}.")
    try:
        experiment = experiments.start(
            challenger,
            data["preset"],
            data["share"],
            auto_promote=data["auto_promote"],
            actor=current_user,
            ip_address=client_ip(),
            confirmed=data["confirm"],
        )
    except experiments.ExperimentError as error:
        _refuse(error)
    return experiments.results(experiment)


@blp.route("/experiments/<int:experiment_id>", methods=["GET"])
@blp.response(200, ExperimentResultsSchema)
@errors(blp, 404)
def get_experiment(experiment_id: int):
    """One experiment with its per-side figures and what the decision rule says."""
    require_role(Role.ADMIN)
    return experiments.results(_experiment(experiment_id))


def _confirmed(experiment_id: int, act, confirm: bool):
    """Stop or promote an experiment as the caller, once confirmed; its results after."""
    require_role(Role.ADMIN)
    found = _experiment(experiment_id)
    try:
        act(found, actor=current_user, ip_address=client_ip(), confirmed=confirm)
    except experiments.ExperimentError as error:
        _refuse(error)
    return experiments.results(found)


@blp.route("/experiments/<int:experiment_id>/stop", methods=["POST"])
@blp.arguments(ConfirmSchema)
@blp.response(200, ExperimentResultsSchema)
@errors(blp, 404, 409, 422)
def stop_experiment(data, experiment_id: int):
    """Stop an experiment: production writes every machine text again (needs confirm)."""
    return _confirmed(experiment_id, experiments.stop, data["confirm"])


@blp.route("/experiments/<int:experiment_id>/promote", methods=["POST"])
@blp.arguments(ConfirmSchema)
@blp.response(200, ExperimentResultsSchema)
@errors(blp, 404, 409, 422)
def promote_experiment(data, experiment_id: int):
    """Make the challenger production once the rule says better (needs confirm)."""
    return _confirmed(experiment_id, experiments.promote, data["confirm"])
