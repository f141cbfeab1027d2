"""SQLAlchemy models, one module per aggregate."""

from .audit import AuditEvent, record_event
from .mlmodels import ModelAlias, ModelVersion
from .users import LifecycleError, Role, User, UserStatus

__all__ = [
    "AuditEvent",
    "LifecycleError",
    "ModelAlias",
    "ModelVersion",
    "Role",
    "User",
    "UserStatus",
    "record_event",
]
