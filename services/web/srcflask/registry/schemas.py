"""API v1 schemas of the model registry: model versions and aliases."""

from __future__ import annotations

import marshmallow as ma
from flask_login import current_user
from marshmallow import fields, validate

from ..api.schemas import Id, Text
from ..ml.engine import PROMPT_FORMATS
from .service import ALIAS_PATTERN


class AdminsOnly(fields.String):
    """A value shown to admins only: null for everyone else (it may be a server path)."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        if not (current_user.is_authenticated and current_user.is_admin):
            return None
        return super().get_value(obj, attr, accessor, default)


class ModelVersionSchema(ma.Schema):
    """Dumps a ModelVersion."""

    name = fields.String(required=True)
    version = fields.Integer(required=True)
    label = fields.String(required=True)
    aliases = fields.List(fields.String(), required=True, attribute="alias_names")
    architecture = fields.String(required=True)
    parameter_count = fields.Integer(required=True)
    size_bytes = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    source = AdminsOnly(
        required=True,
        allow_none=True,
        metadata={
            "description": "Where the version was imported from (catalog packages, or a path "
            "on the server); admins only: null for everyone else"
        },
    )
    prompt_format = fields.String(required=True, validate=validate.OneOf(PROMPT_FORMATS))
    context_length = fields.Integer(required=True, allow_none=True)
    metrics = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)


class ModelListSchema(ma.Schema):
    items = fields.List(fields.Nested(ModelVersionSchema), required=True)
    production = fields.String(required=True, allow_none=True)


class AliasSchema(ma.Schema):
    version = Id(required=True)
    alias = Text(
        required=True,
        validate=validate.Regexp(
            ALIAS_PATTERN,
            error=("Start with a lower-case letter; use a-z, 0-9, '_' and '-' (at most 50)."),
        ),
    )
