"""API v1 schemas of accounts: the caller, people and their roles."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from ..api.schemas import PageSchema, Text, enum_values
from ..models import Role, UserStatus


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
    duplicate_of_id = fields.Integer(
        required=True,
        allow_none=True,
        metadata={
            "description": "For a sign-up made with an email that already had an account: "
            "that account's id. Such a sign-up can only be rejected."
        },
    )


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
