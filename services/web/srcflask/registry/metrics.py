"""How each model version's machine text fares in review, overall and week by week.

Every editor decision is a judgement on one version's text: accepted as it
was, edited, or rejected. Per version this gives the machine texts written and
reviewed, the share of each decision, the median normalised edit distance from
the machine text to the editor's final text (accepted and edited texts: a
rejected one has no final text), and the median time from the text being
ready to its review.
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


@dataclass
class Week:
    start: date
    accepted: int = 0
    edited: int = 0
    rejected: int = 0

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.rejected


@dataclass
class VersionMetrics:
    written: int = 0  # machine texts the version finished
    accepted: int = 0
    edited: int = 0
    rejected: int = 0
    median_edit_distance: float | None = None
    median_review_seconds: float | None = None
    weeks: list[Week] = field(default_factory=list)

    @property
    def reviewed(self) -> int:
        return self.accepted + self.edited + self.rejected

    def share(self, decision: str) -> float | None:
        """accepted, edited or rejected, as a share of the reviewed texts."""
        return getattr(self, decision) / self.reviewed if self.reviewed else None

    def as_dict(self) -> dict:
        return {
            "written": self.written,
            "reviewed": self.reviewed,
            "accepted": self.accepted,
            "edited": self.edited,
            "rejected": self.rejected,
            "acceptance": {d: self.share(d) for d in ("accepted", "edited", "rejected")},
            "median_edit_distance": self.median_edit_distance,
            "median_review_seconds": self.median_review_seconds,
            "weeks": [
                {
                    "start": week.start.isoformat(),
                    "reviewed": week.reviewed,
                    "accepted": week.accepted,
                    "edited": week.edited,
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
    waits: dict[int, list[float]] = defaultdict(list)
    # One pass over the reviews, a few columns each, read in chunks.
    rows = db.session.execute(
        select(
            MachineText.model_version_id,
            Review.decision,
            Review.edit_distance,
            MachineText.finished_at,
            Review.created_at,
        )
        .join(MachineText, MachineText.id == Review.machine_text_id)
        .where(MachineText.model_version_id.in_(version_ids))
        .execution_options(yield_per=1000)
    )
    for version_id, decision, distance, finished_at, reviewed_at in rows:
        version = metrics[version_id]
        name = Decision(decision).value
        setattr(version, name, getattr(version, name) + 1)
        if distance is not None:
            distances[version_id].append(distance)
        if finished_at is not None and reviewed_at is not None:
            waits[version_id].append(max((reviewed_at - finished_at).total_seconds(), 0.0))
        week = weeks[version_id].get(week_start(reviewed_at))
        if week is not None:
            setattr(week, name, getattr(week, name) + 1)
    for version_id, version in metrics.items():
        if distances[version_id]:
            version.median_edit_distance = statistics.median(distances[version_id])
        if waits[version_id]:
            version.median_review_seconds = statistics.median(waits[version_id])
        version.weeks = list(weeks[version_id].values())
    return metrics
