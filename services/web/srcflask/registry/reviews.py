"""Reviewed pairs: what a model version wrote for a document, and what the editor made of it.

Each row is one review: the document as the model saw it (the revision's
title and body), the machine text, the editor's final text (the machine text
when accepted as it was, their edit when edited, the part kept when kept in
part, none when rejected), the decision, the share of the machine text's
words kept, the version and the times. Admins download them (CSV or JSONL,
streamed) and fine-tuning reads them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Select, func, select

from ..extensions import db
from ..models import Decision, MachineText, ModelVersion, Review, Revision

FIELDS = (
    "review_id",
    "document_id",
    "revision",
    "model_version",
    "context_title",
    "context_body",
    "machine_text",
    "final_text",
    "decision",
    "edit_distance",
    "kept_share",
    "chosen",
    "written_at",
    "reviewed_at",
)


@dataclass(frozen=True)
class ReviewFilter:
    """Which reviews: of one version (None: all), reviewed from `since` to `until` included,
    with one of `decisions` (None: any)."""

    version_id: int | None = None
    since: date | None = None
    until: date | None = None
    decisions: tuple[Decision, ...] | None = None

    def apply(self, query: Select) -> Select:
        if self.decisions is not None:
            query = query.where(Review.decision.in_(self.decisions))
        if self.version_id is not None:
            query = query.where(MachineText.model_version_id == self.version_id)
        if self.since is not None:
            query = query.where(Review.created_at >= datetime.combine(self.since, time(), UTC))
        if self.until is not None:
            end = datetime.combine(self.until + timedelta(days=1), time(), UTC)
            query = query.where(Review.created_at < end)
        return query


def final_text(decision: Decision, machine_text: str | None, edited: str | None) -> str | None:
    """What the decision added: the machine text, the edit or the part kept (None: rejected)."""
    if decision is Decision.ACCEPTED:  # an alternative accepted is kept as the review's text
        return edited or machine_text
    if decision in (Decision.EDITED, Decision.KEPT_PART):
        return edited
    return None


def count(which: ReviewFilter = ReviewFilter()) -> int:
    query = which.apply(
        select(func.count())
        .select_from(Review)
        .join(MachineText, MachineText.id == Review.machine_text_id)
    )
    return db.session.scalar(query)


def reviewed_pairs(which: ReviewFilter = ReviewFilter()) -> Iterator[dict[str, Any]]:
    """The reviews `which` selects, oldest first, read from the database in chunks."""
    query = which.apply(
        select(
            Review.id,
            Revision.document_id,
            Revision.number,
            ModelVersion.name,
            ModelVersion.version,
            Revision.title,
            Revision.body,
            MachineText.text,
            Review.text,
            Review.decision,
            Review.edit_distance,
            Review.kept_share,
            Review.chosen,
            MachineText.finished_at,
            Review.created_at,
        )
        .join(MachineText, MachineText.id == Review.machine_text_id)
        .join(Revision, Revision.id == MachineText.revision_id)
        .outerjoin(ModelVersion, ModelVersion.id == MachineText.model_version_id)
        .order_by(Review.id)
        .execution_options(yield_per=500)
    )
    for (
        review_id,
        document_id,
        number,
        name,
        version,
        title,
        body,
        machine,
        edited,
        decision,
        distance,
        share,
        chosen,
        written_at,
        reviewed_at,
    ) in db.session.execute(query):
        decision = Decision(decision)
        yield {
            "review_id": review_id,
            "document_id": document_id,
            "revision": number,
            "model_version": f"{name}:{version}" if name is not None else None,
            "context_title": title,
            "context_body": body,
            "machine_text": machine,
            "final_text": final_text(decision, machine, edited),
            "decision": decision.value,
            "edit_distance": None if distance is None else round(distance, 4),
            "kept_share": None if share is None else round(share, 4),
            "chosen": chosen,
            "written_at": _iso(written_at),
            "reviewed_at": _iso(reviewed_at),
        }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None
