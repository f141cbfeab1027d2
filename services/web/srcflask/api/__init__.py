"""JSON API v1 under /api/v1, described by an OpenAPI document built from the same schemas.

Programs authenticate with personal API tokens (`Authorization: Bearer ...`);
the same access rules as the pages apply. Errors are always
`{"error": {"code", "message", "fields"?}}` (srcflask.errors writes them).
"""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from .schemas import ErrorSchema

API_PREFIX = "/api/v1"


class SrcflaskApi(Api):
    """flask-smorest, documenting srcflask's error envelope and leaving errors to srcflask."""

    ERROR_SCHEMA = ErrorSchema
    # Every status an operation can answer is listed on it; no catch-all "default".
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self):
        # srcflask.errors answers every HTTP error, in JSON under /api.
        pass


def init_app(app: Flask) -> None:
    from .. import DatabaseIdConverter
    from ..accounts import api as accounts_api
    from ..documents import api as documents_api
    from ..experiments import api as experiments_api
    from ..jobs import api as jobs_api
    from ..registry import api as registry_api
    from . import pages

    app.config.update(
        API_TITLE="srcflask API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX=API_PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {
                "description": (
                    "Documents, their machine text and its review, for programs. "
                    "Authenticate with a personal API token from /account/tokens: "
                    "`Authorization: Bearer <token>`. A token acts as its owner, with the "
                    "owner's current role and status."
                ),
            },
            "servers": [{"url": "/"}],
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A personal API token (sfk_...)",
                    },
                },
            },
        },
    )
    api = SrcflaskApi(app)
    api.register_converter(
        DatabaseIdConverter,
        lambda converter: {"type": "integer", "minimum": 1, "maximum": DatabaseIdConverter.MAX},
    )
    # In this order: the OpenAPI document lists its tags as registered.
    for blueprint in (
        accounts_api.me_api,
        documents_api.blp,
        jobs_api.blp,
        registry_api.blp,
        experiments_api.blp,
        accounts_api.people_api,
    ):
        api.register_blueprint(blueprint)
    app.register_blueprint(pages.bp)
    app.extensions["srcflask.api"] = api
