"""Request and response schemas of API v1: one source for validation and the OpenAPI document.

Request schemas refuse unknown fields (marshmallow's default), and every text
field refuses NUL characters and unpaired surrogates, which no database can
store.
"""

from __future__ import annotations

import marshmallow as ma
from flask_login import current_user
from marshmallow import ValidationError, fields, validate, validates_schema

from ..ml.engine import PROMPT_FORMATS
from ..ml.settings import STRATEGIES, GenerationSettings
from ..models import Decision, Role, UserStatus
from ..models.documents import BODY_MAX, TITLE_MAX
from ..models.jobs import JobStatus
from ..models.types import MAX_ID
from ..registry import ALIAS_PATTERN


def storable(value: str) -> None:
    if "\x00" in value:
        raise ValidationError("Text must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValidationError("Text must be valid Unicode (no unpaired surrogates).") from error


class Text(fields.String):
    """A string that can be stored: no NUL characters, valid Unicode."""

    def __init__(self, *args, **kwargs):
        kwargs["validate"] = [storable, *_as_list(kwargs.get("validate"))]
        super().__init__(*args, **kwargs)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class Id(fields.Integer):
    """A database id: a whole number from 1 to 2**31 - 1."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("strict", True)
        kwargs["validate"] = [validate.Range(min=1, max=MAX_ID), *_as_list(kwargs.get("validate"))]
        super().__init__(*args, **kwargs)


class _Through:
    """Read a dotted attribute path, giving None as soon as a step is None."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        for name in (self.attribute or attr).split("."):
            if obj is None:
                return None
            obj = getattr(obj, name)
        return obj


class StringThrough(_Through, fields.String):
    pass


class IntegerThrough(_Through, fields.Integer):
    pass


def enum_values(enum_class) -> list[str]:
    return [member.value for member in enum_class]


# -- errors ------------------------------------------------------------------------


class ErrorBodySchema(ma.Schema):
    code = fields.String(required=True, metadata={"description": "Machine-readable error code"})
    message = fields.String(required=True, metadata={"description": "What went wrong, in words"})
    field_errors = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.Raw(),
        metadata={"description": "Per-field messages, for invalid input"},
    )
    retry_after = fields.Integer(metadata={"description": "Seconds to wait (429 only)"})


class ErrorSchema(ma.Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


# -- people ------------------------------------------------------------------------


class PersonSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class TokenInfoSchema(ma.Schema):
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    expires_at = fields.DateTime(required=True)


class MeSchema(ma.Schema):
    """Dumps an api.me.Caller: the user's fields, and the token."""

    id = fields.Integer(required=True, attribute="user.id")
    name = fields.String(required=True, attribute="user.name")
    email = fields.String(required=True, attribute="user.email")
    organization = fields.String(required=True, attribute="user.organization")
    role = fields.String(
        required=True, attribute="user.role", validate=validate.OneOf(enum_values(Role))
    )
    status = fields.String(
        required=True, attribute="user.status", validate=validate.OneOf(enum_values(UserStatus))
    )
    token = fields.Nested(TokenInfoSchema, allow_none=True, required=True)


class UserSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    email = fields.String(required=True)
    organization = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(enum_values(Role)))
    status = fields.String(required=True, validate=validate.OneOf(enum_values(UserStatus)))
    created_at = fields.DateTime(required=True)
    approved_at = fields.DateTime(required=True, allow_none=True)
    last_login_at = fields.DateTime(required=True, allow_none=True)


class PageSchema(ma.Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)


class UserPageSchema(PageSchema):
    items = fields.List(fields.Nested(UserSchema), required=True)


class UserQuerySchema(ma.Schema):
    status = fields.String(validate=validate.OneOf(enum_values(UserStatus)))
    q = Text(validate=validate.Length(max=100), metadata={"description": "Name or email"})
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


class RoleChangeSchema(ma.Schema):
    role = fields.String(required=True, validate=validate.OneOf(enum_values(Role)))
    confirm_admin = fields.Boolean(
        load_default=False,
        metadata={"description": "Must be true to grant the admin role"},
    )


# -- documents ---------------------------------------------------------------------


class MachineTextProgressSchema(ma.Schema):
    tokens = fields.Integer(required=True)
    max_tokens = fields.Integer(required=True, allow_none=True)


class JobResultSchema(ma.Schema):
    """What every generation job reports: machine texts and API generations alike."""

    id = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(enum_values(JobStatus)))
    text = fields.String(required=True, allow_none=True)
    model_version = StringThrough(required=True, allow_none=True, attribute="model_version.label")
    settings = fields.Dict(required=True)
    error = fields.String(required=True, allow_none=True)
    prompt_tokens = fields.Integer(required=True, allow_none=True)
    generated_tokens = fields.Integer(required=True, allow_none=True)
    truncated = fields.Boolean(required=True)
    queued_at = fields.DateTime(required=True)
    started_at = fields.DateTime(required=True, allow_none=True)
    finished_at = fields.DateTime(required=True, allow_none=True)


class QueuePosition(fields.Integer):
    """Where a queued job stands in the queue (1 is next); null unless queued."""

    def get_value(self, obj, attr, accessor=None, default=ma.missing):
        from ..documents.service import queue_position

        return queue_position(obj)


class MachineTextSchema(JobResultSchema):
    """Dumps a MachineText."""

    revision = IntegerThrough(required=True, attribute="revision.number")
    progress = fields.Nested(MachineTextProgressSchema, required=True)
    queue_position = QueuePosition(required=True, allow_none=True)
    attempts = fields.Integer(required=True)
    reviewed = StringThrough(
        required=True,
        allow_none=True,
        attribute="review.decision",
        validate=validate.OneOf(enum_values(Decision)),
    )


class DocumentSummarySchema(ma.Schema):
    """Dumps a documents.service.DocumentRow."""

    id = fields.Integer(required=True, attribute="document.id")
    title = fields.String(required=True, attribute="document.title")
    owner = fields.Nested(PersonSchema, required=True)
    editor = fields.Nested(PersonSchema, required=True, allow_none=True)
    revision = fields.Integer(required=True, attribute="revision_number")
    machine_text_status = fields.String(
        required=True,
        allow_none=True,
        attribute="status",
        validate=validate.OneOf(enum_values(JobStatus)),
    )
    created_at = fields.DateTime(required=True, attribute="document.created_at")
    updated_at = fields.DateTime(required=True, attribute="document.updated_at")


class DocumentSchema(DocumentSummarySchema):
    body = fields.String(required=True, attribute="document.body")
    machine_text = fields.Nested(
        MachineTextSchema,
        required=True,
        allow_none=True,
        metadata={"description": "null when the body is empty: there is nothing to continue"},
    )


class DocumentPageSchema(PageSchema):
    items = fields.List(fields.Nested(DocumentSummarySchema), required=True)


class DocumentQuerySchema(ma.Schema):
    status = fields.String(
        validate=validate.OneOf(enum_values(JobStatus)),
        metadata={"description": "Only documents whose latest machine text has this status"},
    )
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


class DocumentCreateSchema(ma.Schema):
    title = Text(required=True, validate=[validate.Length(min=1, max=TITLE_MAX), _not_blank])
    body = Text(load_default="", validate=validate.Length(max=BODY_MAX))
    editor_id = Id(load_default=None, allow_none=True)


class DocumentUpdateSchema(ma.Schema):
    title = Text(validate=[validate.Length(min=1, max=TITLE_MAX), _not_blank])
    body = Text(validate=validate.Length(max=BODY_MAX))
    editor_id = Id(allow_none=True)

    @validates_schema
    def not_empty(self, data, **kwargs):
        if not data:
            raise ValidationError("Give at least one of title, body or editor_id.")


class RevisionSchema(ma.Schema):
    """Dumps a Revision."""

    number = fields.Integer(required=True)
    title = fields.String(required=True)
    body = fields.String(required=True)
    author = fields.Nested(PersonSchema, required=True, allow_none=True)
    origin = fields.String(required=True, validate=validate.OneOf(["save", "accepted", "edited"]))
    created_at = fields.DateTime(required=True)
    machine_text_status = StringThrough(
        required=True,
        allow_none=True,
        attribute="machine_text.status",
        validate=validate.OneOf(enum_values(JobStatus)),
    )


class RevisionListSchema(ma.Schema):
    items = fields.List(fields.Nested(RevisionSchema), required=True)


class ReviewCreateSchema(ma.Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["accept", "edit", "reject"]))
    text = Text(
        load_default=None,
        allow_none=True,
        validate=validate.Length(max=BODY_MAX),
        metadata={"description": "The edited text (decision `edit` only)"},
    )


class ReviewSchema(ma.Schema):
    """Dumps a Review."""

    id = fields.Integer(required=True)
    machine_text_id = fields.Integer(required=True)
    decision = fields.String(required=True, validate=validate.OneOf(enum_values(Decision)))
    text = fields.String(required=True, allow_none=True)
    revision = IntegerThrough(
        required=True,
        allow_none=True,
        attribute="revision.number",
        metadata={"description": "The revision the text became"},
    )
    created_at = fields.DateTime(required=True)


# -- generation --------------------------------------------------------------------


def setting_range(name: str) -> validate.Range:
    """The allowed range of a generation setting, as ml.settings declares it."""
    low, high = GenerationSettings.RANGES[name]
    return validate.Range(min=low, max=high)


class SettingsSchema(ma.Schema):
    """Generation settings; ranges are checked again against the admins' limits."""

    strategy = fields.String(validate=validate.OneOf(STRATEGIES))
    max_new_tokens = fields.Integer(strict=True, validate=setting_range("max_new_tokens"))
    num_beams = fields.Integer(strict=True, validate=setting_range("num_beams"))
    no_repeat_ngram_size = fields.Integer(
        strict=True, validate=setting_range("no_repeat_ngram_size")
    )
    early_stopping = fields.Boolean(truthy={True}, falsy={False})
    temperature = fields.Float(validate=setting_range("temperature"), allow_nan=False)
    top_p = fields.Float(validate=setting_range("top_p"), allow_nan=False)
    top_k = fields.Integer(strict=True, validate=setting_range("top_k"))
    seed = fields.Integer(strict=True, allow_none=True, validate=setting_range("seed"))
    repetition_penalty = fields.Float(validate=setting_range("repetition_penalty"), allow_nan=False)


class GenerateSchema(ma.Schema):
    prompt = Text(
        required=True,
        validate=[validate.Length(min=1), _not_blank],
        metadata={"description": "The text to continue"},
    )
    settings = fields.Nested(SettingsSchema, load_default=dict)


class JobSchema(JobResultSchema):
    """Dumps a GenerationJob."""

    prompt = fields.String(required=True)


# -- models ------------------------------------------------------------------------


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
