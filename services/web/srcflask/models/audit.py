"""The admin audit trail: who did what, to whom, when, and from where."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import has_request_context, request
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .types import UTCDateTime, utcnow
from .users import User


class AuditEvent(db.Model):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Kept even if the actor's row goes, so the trail still reads.
    actor_label: Mapped[str] = mapped_column(String(300))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    target_label: Mapped[str] = mapped_column(String(300), default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip_address: Mapped[str | None] = mapped_column(String(64))

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    target_user: Mapped[User | None] = relationship(foreign_keys=[target_user_id])


def describe(user: User | None) -> str:
    return "command line" if user is None else f"{user.name} <{user.email}>"


def record_event(
    action: str,
    *,
    actor: User | None,
    actor_label: str | None = None,
    target_user: User | None = None,
    target_label: str | None = None,
    ip_address: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event to the session; it is committed with the change it records.

    Where from: `ip_address`, else the address of the request being answered (none for
    the command line and background jobs)."""
    if ip_address is None and has_request_context():
        ip_address = request.remote_addr
    event = AuditEvent(
        action=action,
        actor=actor,
        actor_label=actor_label or describe(actor),
        target_user=target_user,
        target_label=target_label
        if target_label is not None
        else (describe(target_user) if target_user else ""),
        details=details,
        ip_address=ip_address,
    )
    db.session.add(event)
    return event
