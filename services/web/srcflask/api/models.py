"""Model versions and their aliases."""

from __future__ import annotations

from flask_login import current_user
from flask_smorest import Blueprint

from .. import registry
from ..models import ModelVersion, Role
from .common import client_ip, errors, refuse, require_role
from .schemas import AliasSchema, ModelListSchema, ModelVersionSchema

blp = Blueprint(
    "Models",
    __name__,
    url_prefix="/api/v1",
    description="Language model versions and their aliases",
)


def version_dict(version: ModelVersion) -> dict:
    return {
        "name": version.name,
        "version": version.version,
        "label": version.label,
        "aliases": version.alias_names,
        "architecture": version.architecture,
        "parameter_count": version.parameter_count,
        "size_bytes": version.size_bytes,
        "sha256": version.sha256,
        # Where a version came from can be a path on the server: for admins only.
        "source": version.source if current_user.role is Role.ADMIN else None,
        "prompt_format": version.prompt_format,
        "context_length": version.context_length,
        "metrics": version.metrics or {},
        "created_at": version.created_at,
    }


@blp.route("/models", methods=["GET"])
@blp.response(200, ModelListSchema)
@errors(blp)
def list_models():
    """Every model version, with its aliases and which one is production."""
    production = registry.production_version()
    return {
        "items": [version_dict(v) for v in registry.all_versions()],
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
    return version_dict(version)
