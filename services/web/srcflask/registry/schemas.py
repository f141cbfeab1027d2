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


class DecisionSharesSchema(ma.Schema):
    accepted = fields.Float(required=True, allow_none=True)
    edited = fields.Float(required=True, allow_none=True)
    kept_part = fields.Float(required=True, allow_none=True)
    rejected = fields.Float(required=True, allow_none=True)


class ReviewWeekSchema(ma.Schema):
    start = fields.String(required=True, metadata={"description": "Monday of the week"})
    reviewed = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    edited = fields.Integer(required=True)
    kept_part = fields.Integer(required=True)
    rejected = fields.Integer(required=True)


class VersionMetricsSchema(ma.Schema):
    """How a version's machine text fares in review."""

    label = fields.String(required=True)
    written = fields.Integer(required=True, metadata={"description": "Machine texts written"})
    reviewed = fields.Integer(required=True)
    accepted = fields.Integer(required=True)
    edited = fields.Integer(required=True)
    kept_part = fields.Integer(
        required=True, metadata={"description": "Kept up to one of its sentences"}
    )
    rejected = fields.Integer(required=True)
    acceptance = fields.Nested(
        DecisionSharesSchema,
        required=True,
        metadata={"description": "Each decision's share of the reviewed texts (null: none)"},
    )
    median_kept_share = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Median share (0 to 1) of the machine text's words kept in the "
            "editor's final text, over every decision (accepted 1, rejected 0)"
        },
    )
    offered_choices = fields.Integer(
        required=True,
        metadata={"description": "Reviews of machine texts offered with alternatives"},
    )
    first_chosen = fields.Integer(
        required=True,
        metadata={"description": "Of those, how many reviewed the model's first choice"},
    )
    median_edit_distance = fields.Float(
        required=True,
        allow_none=True,
        metadata={
            "description": "Median normalised edit distance from the machine text to the "
            "editor's final text (0 to 1), over every decision but rejected"
        },
    )
    median_review_seconds = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "Median time from the text being ready to its review"},
    )
    weeks = fields.List(fields.Nested(ReviewWeekSchema), required=True)
