"""How each model version's machine text fares in review, overall and week by week.

Every editor decision is a judgement on one version's text: accepted as it
was, edited, kept in part (up to one of its sentences), or rejected. Per
version this gives the machine texts written and reviewed, the share of each
decision, the median share of the machine text's words kept in the editor's
final text (over every decision: 1 accepted, 0 rejected), the median
normalised edit distance from the machine text to the final text (a rejected
one has none), how often the model's first choice was chosen where it offered
alternatives, and the median time from the text being ready to its review.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from ..extensions import db
from ..models import Decision, MachineText, MachineTextStatus, Review

# Weeks of history a chart shows, ending with the current one.
CHART_WEEKS = 12


DECISIONS = ("accepted", "edited", "kept_part", "rejected")


@dataclass
class Week:
    start: date
    accepted: int = 0
    edited: int = 0
    kept_part: int = 0
    rejected: int = 0

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.kept_part + self.rejected


@dataclass
class VersionMetrics:
    written: int = 0  # machine texts the version finished
    accepted: int = 0
    edited: int = 0
    kept_part: int = 0
    rejected: int = 0
    median_kept_share: float | None = None
    # Reviews of texts offered with alternatives, and how many kept the model's first choice.
    offered_choices: int = 0
    first_chosen: int = 0
    median_edit_distance: float | None = None
    median_review_seconds: float | None = None
    weeks: list[Week] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.kept_part + self.rejected

    def share(self, decision: str) -> float | None:
        """accepted, edited, kept_part or rejected, as a share of the reviewed texts."""
        return getattr(self, decision) / self.reviewed if self.reviewed else None

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "reviewed": self.reviewed,
            "accepted": self.accepted,
            "edited": self.edited,
            "kept_part": self.kept_part,
            "rejected": self.rejected,
            "acceptance": {d: self.share(d) for d in DECISIONS},
            "median_kept_share": self.median_kept_share,
            "offered_choices": self.offered_choices,
            "first_chosen": self.first_chosen,
            "median_edit_distance": self.median_edit_distance,
            "median_review_seconds": self.median_review_seconds,
            "weeks": [
                {
                    "start": week.start.isoformat(),
                    "reviewed": week.reviewed,
                    "accepted": week.accepted,
                    "edited": week.edited,
                    "kept_part": week.kept_part,
                    "rejected": week.rejected,
                }
                for week in self.weeks
            ],
        }


def week_start(moment: datetime | date) -> date:
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def version_metrics(
    version_ids: list[int], *, today: date | None = None
) -> dict[int, VersionMetrics]:
    """The metrics of each of `version_ids`, with the last `CHART_WEEKS` weeks of reviews."""
    metrics = {version_id: VersionMetrics() for version_id in version_ids}
    if not version_ids:
        return metrics
    written = db.session.execute(
        select(MachineText.model_version_id, func.count())
        .where(
            MachineText.model_version_id.in_(version_ids),
            MachineText.status == MachineTextStatus.DONE,
        )
        .group_by(MachineText.model_version_id)
    ).all()
    for version_id, count in written:
        metrics[version_id].written = count

    first_week = week_start(today or date.today()) - timedelta(weeks=CHART_WEEKS - 1)
    weeks = {
        version_id: {
            first_week + timedelta(weeks=n): Week(first_week + timedelta(weeks=n))
            for n in range(CHART_WEEKS)
        }
        for version_id in version_ids
    }
    distances: dict[int, list[float]] = defaultdict(list)
    kept: dict[int, list[float]] = defaultdict(list)
    waits: dict[int, list[float]] = defaultdict(list)
    # One pass over the reviews, a few columns each, read in chunks.
    rows = db.session.execute(
        select(
            MachineText.model_version_id,
            Review.decision,
            Review.edit_distance,
            Review.kept_share,
            Review.chosen,
            MachineText.finished_at,
            Review.created_at,
        )
        .join(MachineText, MachineText.id == Review.machine_text_id)
        .where(MachineText.model_version_id.in_(version_ids))
        .execution_options(yield_per=1000)
    )
    for version_id, decision, distance, share, chosen, finished_at, reviewed_at in rows:
        version = metrics[version_id]
        name = Decision(decision).value
        setattr(version, name, getattr(version, name) + 1)
        if distance is not None:
            distances[version_id].append(distance)
        if share is not None:
            kept[version_id].append(share)
        if chosen is not None:
            version.offered_choices += 1
            version.first_chosen += chosen == 0
        if finished_at is not None and reviewed_at is not None:
            waits[version_id].append(max((reviewed_at - finished_at).total_seconds(), 0.0))
        week = weeks[version_id].get(week_start(reviewed_at))
        if week is not None:
            setattr(week, name, getattr(week, name) + 1)
    for version_id, version in metrics.items():
        if kept[version_id]:
            version.median_kept_share = statistics.median(kept[version_id])
        if distances[version_id]:
            version.median_edit_distance = statistics.median(distances[version_id])
        if waits[version_id]:
            version.median_review_seconds = statistics.median(waits[version_id])
        version.weeks = list(weeks[version_id].values())
    return metrics
