"""What every generation job row has: a status, a claim, a heartbeat and the result.

Machine texts (one per revision) and API generation jobs are both jobs; the
runners in srcflask.jobs work on either through these columns.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from .mlmodels import ModelVersion
from .types import UTCDateTime, utcnow
from .users import enum_column


class JobStatus(enum.StrEnum):
    # Held back: its owner has JOB_MAX_QUEUED_PER_USER jobs queued or running already;
    # it is queued as soon as one of them finishes.
    WAITING = "waiting"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    # Never run: a newer save of the same document came before the model got to it.
    SUPERSEDED = "superseded"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.DONE, JobStatus.FAILED, JobStatus.SUPERSEDED)


class JobMixin:
    """Columns of a generation job. Subclasses name their status CHECK constraint."""

    STATUS_CONSTRAINT = "job_status"

    @declared_attr
    def status(cls) -> Mapped[JobStatus]:
        return mapped_column(
            enum_column(JobStatus, cls.STATUS_CONSTRAINT), default=JobStatus.QUEUED
        )

    text: Mapped[str | None] = mapped_column(Text)

    @declared_attr
    def model_version_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("model_versions.id", ondelete="RESTRICT"), index=True)

    @declared_attr
    def model_version(cls) -> Mapped[ModelVersion | None]:
        return relationship(ModelVersion)

    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    generated_tokens: Mapped[int | None] = mapped_column(Integer)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    # Tokens written so far while running, out of max_new_tokens.
    progress_tokens: Mapped[int] = mapped_column(Integer, default=0)
    max_new_tokens: Mapped[int | None] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
