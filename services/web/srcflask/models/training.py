"""Fine-tuning runs: a model version trained on reviewed machine text into a new version."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .mlmodels import ModelVersion
from .types import UTCDateTime, utcnow
from .users import User, enum_column


class TrainingStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (TrainingStatus.DONE, TrainingStatus.FAILED, TrainingStatus.CANCELLED)


class TrainingRun(db.Model):
    """One fine-tuning job. The row is the job: a worker claims it, reports each step
    here, checks `cancel_requested`, and resumes from its checkpoint after a crash."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))  # the new version's model name
    status: Mapped[TrainingStatus] = mapped_column(
        enum_column(TrainingStatus, "training_status"), default=TrainingStatus.QUEUED
    )
    method: Mapped[str] = mapped_column(String(20), default="lora")
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_by_label: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    parent: Mapped[ModelVersion] = relationship(foreign_keys=[parent_version_id])
    result: Mapped[ModelVersion | None] = relationship(foreign_keys=[result_version_id])
    created_by: Mapped[User | None] = relationship()

    @property
    def percent(self) -> int:
        return round(100 * self.step / self.total_steps) if self.total_steps else 0
