"""What every API v1 schema shares: storable text and id fields, errors, pages, people.

Each feature declares its own request and response schemas beside its service
(`accounts.schemas`, `documents.schemas`, `jobs.schemas`, `registry.schemas`);
they are the one source for validation and the OpenAPI document. Request
schemas refuse unknown fields (marshmallow's default), and every text field
refuses NUL characters and unpaired surrogates, which no database can store.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import ValidationError, fields, validate

from ..models.types import MAX_ID


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


def not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must not be blank.")


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


# -- shared shapes ----------------------------------------------------------------


class PersonSchema(ma.Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)


class PageSchema(ma.Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)
    pages = fields.Integer(required=True)
