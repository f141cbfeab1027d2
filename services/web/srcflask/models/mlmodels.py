"""The model registry: every model version srcflask has imported, and its aliases."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from ..ml.engine import PROMPT_FORMATS as ENGINE_PROMPT_FORMATS
from .types import UTCDateTime, utcnow
from .users import User

PRODUCTION = "production"
PROMPT_FORMATS = tuple(ENGINE_PROMPT_FORMATS)


class ModelVersion(db.Model):
    """One imported model: where it came from, what it is, how fast it runs."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(1000))
    source_kind: Mapped[str] = mapped_column(String(16))  # folder, gguf or hub
    source_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    # Folder of the version inside the model store (relative to MODEL_STORE).
    artifact: Mapped[str] = mapped_column(String(300), unique=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    architecture: Mapped[str] = mapped_column(String(100))
    model_type: Mapped[str] = mapped_column(String(50))
    parameter_count: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    tokenizer: Mapped[str] = mapped_column(String(100))
    context_length: Mapped[int | None] = mapped_column(Integer)
    prompt_format: Mapped[str] = mapped_column(String(16), default="raw")
    system_prompt: Mapped[str | None] = mapped_column(Text)
    generation_settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The license the weights come under, and its terms file inside the artifact folder.
    license: Mapped[str | None] = mapped_column(String(100))
    license_url: Mapped[str | None] = mapped_column(String(300))
    license_file: Mapped[str | None] = mapped_column(String(200))
    imported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    imported_by_label: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Why the version's files in the model store cannot be used (they changed on disk
    # since import), as the last check found; None while they verify (registry/integrity.py).
    files_problem: Mapped[str | None] = mapped_column(Text)
    # A fine-tuned version: the version it was trained from, and how (dataset snapshot,
    # hyperparameters, metrics, who and when; see registry.training).
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    imported_by: Mapped[User | None] = relationship()
    aliases: Mapped[list[ModelAlias]] = relationship(
        back_populates="version",
        cascade="all, delete-orphan",
        order_by="ModelAlias.alias",
        foreign_keys="ModelAlias.version_id",
    )
    parent: Mapped[ModelVersion | None] = relationship(remote_side=[id])
    evaluations: Mapped[list[ModelEvaluation]] = relationship(
        back_populates="version",
        cascade="all, delete-orphan",
        order_by="ModelEvaluation.created_at.desc()",
    )

    @property
    def label(self) -> str:
        """How people and logs name this version: `name:version`."""
        return f"{self.name}:{self.version}"

    @property
    def alias_names(self) -> list[str]:
        return [alias.alias for alias in self.aliases]

    @property
    def is_production(self) -> bool:
        return PRODUCTION in self.alias_names


class ModelAlias(db.Model):
    """A movable name for one version of a model, such as `production`."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        UniqueConstraint("model_name", "alias", name="uq_model_aliases_name_alias"),
        # `production` names the one version that writes machine text: one in the whole system.
        Index(
            "uq_model_aliases_one_production",
            "alias",
            unique=True,
            sqlite_where=text("alias = 'production'"),
            postgresql_where=text("alias = 'production'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    model_name: Mapped[str] = mapped_column(String(100))
    alias: Mapped[str] = mapped_column(String(50))
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    # The version the alias named before its last move: what "Roll back" returns to.
    previous_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )

    version: Mapped[ModelVersion] = relationship(
        back_populates="aliases", foreign_keys=[version_id]
    )
    previous_version: Mapped[ModelVersion | None] = relationship(foreign_keys=[previous_version_id])


class ModelEvaluation(db.Model):
    """One run of the quality benchmark on a version, in one prompt format and preset.

    `summary` holds the figures (`srcflask.ml.quality.summarise`); `samples`
    the machine text written for each benchmark document and its verdict.
    """

    __tablename__ = "model_evaluations"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    prompt_format: Mapped[str] = mapped_column(String(16))
    preset: Mapped[str] = mapped_column(String(50))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset_sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    samples: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    measured_on: Mapped[str] = mapped_column(String(200), default="")
    created_by_label: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    version: Mapped[ModelVersion] = relationship(back_populates="evaluations")

    @property
    def max_new_tokens(self) -> int | None:
        return (self.settings or {}).get("max_new_tokens")


class ModelLoad(db.Model):
    """One process loading one model version into memory: while it loads, and how long it took.

    Any process may read them: a web page says "loading the model" while a
    worker elsewhere loads it, with an estimate from the loads before.
    """

    __tablename__ = "model_loads"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), index=True
    )
    # The loading process, as jobs name their claimers (host:pid:token).
    worker: Mapped[str] = mapped_column(String(120))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Both unset while it loads.
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    seconds: Mapped[float | None] = mapped_column(Float)
