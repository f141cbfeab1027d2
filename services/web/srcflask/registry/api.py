"""Model versions and their aliases."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint

from ..api.common import client_ip, errors, refuse, require_role
from ..models import Role
from . import metrics
from . import service as registry
from .schemas import AliasSchema, ModelListSchema, ModelVersionSchema, VersionMetricsSchema

blp = Blueprint(
    "Models",
    __name__,
    url_prefix="/api/v1",
    description="Language model versions and their aliases",
)


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelListSchema)
@errors(blp)
def list_models():
    """Every model version, with its aliases and which one is production."""
    production = registry.production_version()
    return {
        "items": registry.all_versions(),
        "production": production.label if production else None,
    }


@blp.route("/models/<string:name>/aliases", methods=["POST"])
@blp.arguments(AliasSchema)
@blp.response(200, ModelVersionSchema)
@errors(blp, 404, 422)
def set_alias(data, name: str):
    """Point an alias (such as production) at a version of a model (admins)."""
    require_role(Role.ADMIN)
    try:
        version = registry.find_version(f"{name}:{data['version']}")
    except registry.RegistryError:
        refuse(404, f"No version {data['version']} of a model named {name!r}.")
    registry.set_alias(version, data["alias"], actor=current_user, ip_address=client_ip())
    return version


@blp.route("/models/<string:name>/<int:version>/metrics", methods=["GET"])
@blp.response(200, VersionMetricsSchema)
@errors(blp, 404)
def version_metrics(name: str, version: int):
    """How a version's machine text fares in review, with the last 12 weeks (admins)."""
    require_role(Role.ADMIN)
    try:
        found = registry.find_version(f"{name}:{version}")
    except registry.RegistryError:
        refuse(404, f"No version {version} of a model named {name!r}.")
    return {"label": found.label} | metrics.version_metrics([found.id])[found.id].as_dict()
