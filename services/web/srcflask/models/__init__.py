"""SQLAlchemy models, one module per aggregate."""

from .audit import AuditEvent, record_event
from .users import LifecycleError, Role, User, UserStatus

__all__ = ["AuditEvent", "LifecycleError", "Role", "User", "UserStatus", "record_event"]
