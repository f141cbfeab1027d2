"""An admin's model actions that run in the background: a prompt tried, a speed measured, a
catalog model fetched."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .mlmodels import ModelVersion
from .types import UTCDateTime, utcnow
from .users import User, enum_column


class ModelTaskKind(enum.StrEnum):
    TRY = "try"  # a prompt tried on a version
    SPEED = "speed"  # a version's speed measured
    FETCH = "fetch"  # a catalog model fetched and imported


class ModelTaskStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (ModelTaskStatus.DONE, ModelTaskStatus.FAILED)


class ModelTask(db.Model):
    """One model action. The row is the job: a worker claims it, reports its stage and
    progress here, beats its heart, and writes the result or the reason it failed."""

    __tablename__ = "model_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[ModelTaskKind] = mapped_column(enum_column(ModelTaskKind, "model_task_kind"))
    status: Mapped[ModelTaskStatus] = mapped_column(
        enum_column(ModelTaskStatus, "model_task_status"), default=ModelTaskStatus.QUEUED
    )
    # The version tried or measured; for a fetch, the version it imported.
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    catalog_name: Mapped[str | None] = mapped_column(String(100))
    # Set while the task is queued or running, cleared when it ends: one task per slot
    # ("speed", "fetch", "try:VERSION:USER") at a time, kept by the database.
    active_slot: Mapped[str | None] = mapped_column(String(120), unique=True)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stage: Mapped[str] = mapped_column(String(300), default="")
    done: Mapped[int | None] = mapped_column(Integer)
    total: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_label: Mapped[str] = mapped_column(String(300))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    version: Mapped[ModelVersion | None] = relationship()
    created_by: Mapped[User | None] = relationship()

    @property
    def seconds(self) -> float:
        """How long it has taken so far, or took, since it was asked for."""
        end = self.finished_at or utcnow()
        return max(0.0, (end - self.created_at).total_seconds())
