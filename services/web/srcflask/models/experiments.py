"""Experiments: the production version (champion) against another version or preset
(challenger), on live documents, judged by what editors keep."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .mlmodels import ModelVersion
from .types import UTCDateTime, utcnow
from .users import User, enum_column


class ExperimentStatus(enum.StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"  # by an admin, by the guardrail, or because an arm could not run
    PROMOTED = "promoted"  # the challenger became production


class Arm(enum.StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


class Experiment(db.Model):
    """One comparison. A document's machine texts go to one arm for the whole experiment
    (experiments.service.arm_of); each text records its experiment and arm."""

    __tablename__ = "experiments"
    __table_args__ = (
        # One experiment runs at a time, in the whole system.
        Index(
            "uq_experiments_one_running",
            "status",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[ExperimentStatus] = mapped_column(
        enum_column(ExperimentStatus, "experiment_status"), default=ExperimentStatus.RUNNING
    )
    # Each arm: the version and the settings it writes with, fixed when the experiment
    # starts; the preset's name where the settings are a named preset's.
    champion_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    champion_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    champion_preset: Mapped[str | None] = mapped_column(String(50))
    challenger_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True
    )
    challenger_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    challenger_preset: Mapped[str | None] = mapped_column(String(50))
    # The share of documents whose machine texts the challenger writes.
    share: Mapped[float] = mapped_column(Float, default=0.5)
    # Make the challenger production as soon as the rule says it is better.
    auto_promote: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the decision rule said last (experiments.rule.Verdict.outcome), and why it ended.
    verdict: Mapped[str | None] = mapped_column(String(20))
    ended_because: Mapped[str | None] = mapped_column(Text)
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    started_by_label: Mapped[str] = mapped_column(String(300))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_by_label: Mapped[str | None] = mapped_column(String(300))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    champion: Mapped[ModelVersion | None] = relationship(foreign_keys=[champion_version_id])
    challenger: Mapped[ModelVersion | None] = relationship(foreign_keys=[challenger_version_id])
    started_by: Mapped[User | None] = relationship()

    @property
    def running(self) -> bool:
        return self.status is ExperimentStatus.RUNNING

    def version_of(self, arm: Arm | str) -> ModelVersion | None:
        return self.champion if Arm(arm) is Arm.CHAMPION else self.challenger

    def settings_of(self, arm: Arm | str) -> dict[str, Any]:
        return self.champion_settings if Arm(arm) is Arm.CHAMPION else self.challenger_settings

    def preset_of(self, arm: Arm | str) -> str | None:
        return self.champion_preset if Arm(arm) is Arm.CHAMPION else self.challenger_preset

    def arm_label(self, arm: Arm | str) -> str:
        """`name:version` and the preset, as the admins' pages name an arm."""
        version = self.version_of(arm)
        label = version.label if version else "a deleted version"
        preset = self.preset_of(arm)
        return f"{label} ({preset})" if preset else f"{label} (its own settings)"
