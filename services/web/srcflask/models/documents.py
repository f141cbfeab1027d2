"""Documents, their revisions, the machine text written for each revision, and reviews."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import Mapped, foreign, mapped_column, relationship

from ..extensions import db
from .experiments import Experiment
from .jobs import JobMixin, JobStatus
from .types import UTCDateTime, utcnow
from .users import User, enum_column

TITLE_MAX = 200
BODY_MAX = 20_000


# Machine texts are jobs: their status is the job status.
MachineTextStatus = JobStatus


class RevisionOrigin(enum.StrEnum):
    SAVE = "save"  # the sponsor saved the document
    ACCEPTED = "accepted"  # an editor accepted the machine text as it was
    EDITED = "edited"  # an editor accepted the machine text after editing it
    KEPT_PART = "kept_part"  # an editor kept the machine text up to one of its sentences


class Decision(enum.StrEnum):
    ACCEPTED = "accepted"
    EDITED = "edited"
    KEPT_PART = "kept_part"  # the machine text up to one of its sentences; the rest dropped
    REJECTED = "rejected"


class Document(db.Model):
    __tablename__ = "documents"
    __table_args__ = (Index("ix_documents_owner_updated", "owner_id", "updated_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"))
    editor_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    owner: Mapped[User] = relationship(foreign_keys=[owner_id])
    editor: Mapped[User | None] = relationship(foreign_keys=[editor_id])
    revisions: Mapped[list[Revision]] = relationship(
        back_populates="document", order_by="Revision.number", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Document {self.id} {self.title!r}>"


class Revision(db.Model):
    """One save of a document: nothing is ever overwritten."""

    __tablename__ = "revisions"
    __table_args__ = (
        UniqueConstraint("document_id", "number", name="uq_revisions_document_number"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    body: Mapped[str] = mapped_column(Text, default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    origin: Mapped[RevisionOrigin] = mapped_column(
        enum_column(RevisionOrigin, "revision_origin"), default=RevisionOrigin.SAVE
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    document: Mapped[Document] = relationship(back_populates="revisions")
    author: Mapped[User | None] = relationship()
    # The machine text now offered for review: the latest the model wrote for this revision.
    machine_text: Mapped[MachineText | None] = relationship(
        primaryjoin=lambda: and_(
            Revision.id == foreign(MachineText.revision_id), MachineText.replaced_at.is_(None)
        ),
        uselist=False,
        overlaps="revision,machine_texts",
    )
    # Every machine text written for this revision, first first: an editor who rejects one
    # may ask for another, and the one replaced stays in the history with its review.
    machine_texts: Mapped[list[MachineText]] = relationship(
        back_populates="revision",
        order_by="MachineText.number",
        cascade="all, delete-orphan",
        overlaps="machine_text",
    )

    @property
    def machine_text_id(self) -> int | None:
        return self.machine_text.id if self.machine_text else None


class MachineText(JobMixin, db.Model):
    """The continuation a language model wrote for one revision (the original `autodocs`).

    The row is the source of truth for its generation job: its status moves
    queued -> running -> done or failed, and a worker may only write it while
    it holds the claim (`claimed_by`), so it is written exactly once.
    """

    __tablename__ = "machine_texts"
    __table_args__ = (
        Index("ix_machine_texts_status_queued", "status", "queued_at"),
        UniqueConstraint("revision_id", "number", name="uq_machine_texts_revision_number"),
    )

    STATUS_CONSTRAINT = "machine_text_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(ForeignKey("revisions.id", ondelete="CASCADE"))
    # 1 for a revision's first machine text, 2 for the one written when that was rejected
    # and someone asked for another, and so on.
    number: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # When someone asked for another text in its place: it stays in the history.
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Up to two clearly different texts the search also wrote, for the editor to choose from.
    alternatives: Mapped[list[str] | None] = mapped_column(JSON)

    # Written for an experiment: which, and by which arm (fixed when it is queued), and the
    # preset the text was written with (None: the version's own settings).
    experiment_id: Mapped[int | None] = mapped_column(
        ForeignKey("experiments.id", ondelete="SET NULL"), index=True
    )
    arm: Mapped[str | None] = mapped_column(String(16))
    preset: Mapped[str | None] = mapped_column(String(50))

    revision: Mapped[Revision] = relationship(
        back_populates="machine_texts", overlaps="machine_text"
    )
    review: Mapped[Review | None] = relationship(back_populates="machine_text", uselist=False)
    experiment: Mapped[Experiment | None] = relationship()

    def choices(self) -> list[str]:
        """The texts an editor chooses from: the model's first choice, then its alternatives."""
        return [self.text or "", *(self.alternatives or [])]

    @property
    def progress(self) -> dict[str, int | None]:
        """Tokens written so far, out of the most this job may write."""
        return {"tokens": self.progress_tokens, "max_tokens": self.max_new_tokens}


class Review(db.Model):
    """An editor's decision on a machine text."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    machine_text_id: Mapped[int] = mapped_column(
        ForeignKey("machine_texts.id", ondelete="CASCADE"), unique=True
    )
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    decision: Mapped[Decision] = mapped_column(enum_column(Decision, "review_decision"))
    text: Mapped[str | None] = mapped_column(Text)
    # Normalised edit distance (0 to 1) from the machine text to the editor's final text:
    # 0 when accepted as it was, None when rejected (there is no final text).
    edit_distance: Mapped[float | None] = mapped_column(Float)
    # The share (0 to 1) of the machine text's words that survive into the editor's final
    # text: 1 when accepted as it was, 0 when rejected (documents.diff.kept_word_share).
    kept_share: Mapped[float | None] = mapped_column(Float)
    # Which of the machine text's choices the editor reviewed: 0 the model's first, 1 or 2
    # an alternative (MachineText.choices); None when none was offered.
    chosen: Mapped[int | None] = mapped_column(Integer)
    # The revision an accepted or edited machine text became.
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("revisions.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    machine_text: Mapped[MachineText] = relationship(back_populates="review")
    editor: Mapped[User | None] = relationship()
    revision: Mapped[Revision | None] = relationship(foreign_keys=[revision_id])
