"""Experiments' rules: start one, assign documents to arms, tell a worker who writes a
text, read the results, and act on the verdict (stop, promote).

The champion is the production version with its settings when the experiment
starts; the challenger another version, another preset, or both. A document's
arm comes from a hash of the experiment and the document, so every machine
text of a document goes to the same arm, whichever process queues it, and the
arm is stored on the text when it is queued: a worker that dies and a text
queued again keep their arm. Every change is audited.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from flask import has_request_context
from flask_login import current_user
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from ..extensions import db
from ..ml.settings import PRESETS, GenerationSettings, preset_named
from ..models import (
    Arm,
    Decision,
    Experiment,
    ExperimentStatus,
    MachineText,
    MachineTextStatus,
    ModelVersion,
    Review,
    User,
    record_event,
)
from ..models.types import utcnow
from ..registry import service as registry
from . import rule, summary
from .charts import LineChart, kept_share_chart

DEFAULT_SHARE = 0.5
SHARE_RANGE = (0.05, 0.95)
UNFINISHED = (MachineTextStatus.WAITING, MachineTextStatus.QUEUED, MachineTextStatus.RUNNING)
OUTCOMES = ("collecting", "better", "no difference", "worse")


class ExperimentError(ValueError):
    """An experiment action that cannot be done; the message says why (and `status`)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


class ConfirmationNeeded(ExperimentError):
    """Starting, stopping and promoting are confirmed first; this one was not."""

    def __init__(self, message: str):
        super().__init__(message, 409)


# -- reading -------------------------------------------------------------------------


def running() -> Experiment | None:
    return db.session.scalar(
        select(Experiment).where(Experiment.status == ExperimentStatus.RUNNING)
    )


def get(experiment_id: int) -> Experiment | None:
    return db.session.get(Experiment, experiment_id)


def all_experiments() -> list[Experiment]:
    return db.session.scalars(
        select(Experiment)
        .options(selectinload(Experiment.champion), selectinload(Experiment.challenger))
        .order_by(Experiment.started_at.desc(), Experiment.id.desc())
    ).all()


def hidden_from(user: User | None, machine_text: MachineText | None) -> bool:
    """Whether `user` may not learn who wrote `machine_text`: it belongs to a running
    experiment and they are not an admin (blind review)."""
    if machine_text is None or machine_text.experiment_id is None:
        return False
    if user is not None and getattr(user, "is_admin", False):
        return False
    experiment = machine_text.experiment
    return experiment is not None and experiment.running


def writer_hidden(machine_text: MachineText | None) -> bool:
    """`hidden_from` for the person this request is for (templates)."""
    return hidden_from(current_user if has_request_context() else None, machine_text)


# -- starting and assigning ----------------------------------------------------------


def start(
    challenger: ModelVersion,
    preset: str | None = None,
    share: float = DEFAULT_SHARE,
    *,
    auto_promote: bool = False,
    actor: User | None,
    ip_address: str | None = None,
    confirmed: bool = False,
) -> Experiment:
    """Start comparing the production version with `challenger` (with `preset`, or its own
    settings) on `share` of documents."""
    champion = registry.production_version()
    if champion is None:
        raise ExperimentError("Choose a production model first: it is the champion.")
    if preset is not None and preset not in PRESETS:
        raise ExperimentError(f"preset must be one of {', '.join(sorted(PRESETS))}", 422)
    if not isinstance(share, int | float) or not (
        SHARE_RANGE[0] <= share <= SHARE_RANGE[1] and math.isfinite(share)
    ):
        raise ExperimentError(
            f"The challenger's share must be between {SHARE_RANGE[0]} and {SHARE_RANGE[1]}.", 422
        )
    champion_settings = registry.settings_for(champion)
    challenger_settings = PRESETS[preset] if preset else registry.settings_for(challenger)
    if challenger.id == champion.id and challenger_settings == champion_settings:
        raise ExperimentError(
            f"{champion.label} with these settings is the champion already: choose another "
            "version or another preset.",
            422,
        )
    problem = challenger.files_problem or registry.changed_files(challenger)
    if problem:
        raise ExperimentError(f"{challenger.label} cannot be used: {problem}.")
    if running() is not None:
        raise ExperimentError("An experiment is running already: stop it first.")
    if not confirmed:
        raise ConfirmationNeeded(
            f"Starting an experiment with {challenger.label} needs confirming."
        )
    experiment = Experiment(
        champion=champion,
        champion_settings=champion_settings.to_dict(),
        champion_preset=preset_named(champion_settings),
        challenger=challenger,
        challenger_settings=challenger_settings.to_dict(),
        challenger_preset=preset or preset_named(challenger_settings),
        share=float(share),
        auto_promote=bool(auto_promote),
        verdict="collecting",
        started_by=actor,
        started_by_label=actor.email if actor else "command line",
    )
    db.session.add(experiment)
    try:
        db.session.flush()
    except IntegrityError:  # another admin started one at the same moment
        db.session.rollback()
        raise ExperimentError("An experiment is running already: stop it first.") from None
    record_event(
        "experiment.start",
        actor=actor,
        target_label=_describe(experiment),
        ip_address=ip_address,
        experiment=experiment.id,
        champion=experiment.arm_label(Arm.CHAMPION),
        challenger=experiment.arm_label(Arm.CHALLENGER),
        share=experiment.share,
        auto_promote=experiment.auto_promote,
    )
    db.session.commit()
    return experiment


def arm_of(experiment: Experiment, document_id: int) -> Arm:
    """The arm of a document: the same for every text of it, in every process."""
    digest = hashlib.sha256(f"srcflask-experiment:{experiment.id}:{document_id}".encode())
    position = int.from_bytes(digest.digest()[:8], "big") / 2**64
    return Arm.CHALLENGER if position < experiment.share else Arm.CHAMPION


def assign(machine_text: MachineText, document_id: int) -> None:
    """Put a machine text being queued into the running experiment's arm for its document."""
    assign_to(running(), machine_text, document_id)


def assign_to(experiment: Experiment | None, machine_text: MachineText, document_id: int) -> None:
    """`assign`, with the running experiment (or None) already read."""
    if experiment is None:
        machine_text.experiment_id = machine_text.arm = machine_text.preset = None
        return
    arm = arm_of(experiment, document_id)
    machine_text.experiment_id = experiment.id
    machine_text.arm = arm.value
    machine_text.preset = experiment.preset_of(arm)


@dataclass(frozen=True)
class Writer:
    """Who writes a machine text: a version and its settings; `arm` None outside experiments."""

    version: ModelVersion
    settings: GenerationSettings
    arm: Arm | None = None


def writer_of(
    experiment: Experiment | None,
    experiment_id: int | None,
    arm: str | None,
    production: Writer | None,
) -> Writer | None:
    """The writer of a text with this assignment, `experiment` being the running one;
    `production` (None when no model can write it) outside experiments.

    A text of an experiment that ended is written by production. A challenger that
    can no longer be used (its version gone, or its files changed) stops the
    experiment here, and its texts go to production.
    """
    if experiment is None or not experiment.running or experiment.id != experiment_id or not arm:
        return production
    which = Arm(arm)
    version = experiment.version_of(which)
    problem = (
        f"{which.value}'s version was deleted"
        if version is None
        else (version.files_problem and f"{version.label}'s files changed on disk")
    )
    if problem:
        end(experiment, ExperimentStatus.STOPPED, f"Stopped: the {problem}.", actor=None)
        return production
    return Writer(version, GenerationSettings.from_dict(experiment.settings_of(which)), which)


def production_writer() -> Writer | None:
    """Production's version and settings; None when no version is production."""
    version = registry.production_version()
    return Writer(version, registry.settings_for(version)) if version is not None else None


def cannot_load(version: ModelVersion, reason: str) -> bool:
    """A version that failed to load: stop the running experiment if it is its challenger,
    and send its texts back to the queue for production. Returns whether it stopped one."""
    experiment = running()
    if experiment is None or experiment.challenger_version_id != version.id:
        return False
    if experiment.champion_version_id == version.id:
        return False
    end(
        experiment,
        ExperimentStatus.STOPPED,
        f"Stopped: the challenger {version.label} could not be loaded ({reason}).",
        actor=None,
    )
    return True


# -- ending --------------------------------------------------------------------------


def _describe(experiment: Experiment) -> str:
    return f"experiment {experiment.id}"


def end(
    experiment: Experiment,
    status: ExperimentStatus,
    because: str,
    *,
    actor: User | None,
    ip_address: str | None = None,
) -> None:
    """End `experiment`; its texts not yet written go to production, out of the experiment.

    Written texts keep their arm, so the results stay as they were.
    """
    experiment.status = status
    experiment.ended_at = utcnow()
    experiment.ended_by_label = actor.email if actor else "srcflask"
    experiment.ended_because = because
    db.session.execute(
        update(MachineText)
        .where(MachineText.experiment_id == experiment.id, MachineText.status.in_(UNFINISHED))
        .values(experiment_id=None, arm=None, preset=None)
        .execution_options(synchronize_session=False)
    )
    record_event(
        "experiment.promote" if status is ExperimentStatus.PROMOTED else "experiment.stop",
        actor=actor,
        target_label=_describe(experiment),
        ip_address=ip_address,
        experiment=experiment.id,
        because=because,
        verdict=experiment.verdict,
    )
    db.session.commit()


def stop(
    experiment: Experiment,
    *,
    actor: User | None,
    ip_address: str | None = None,
    confirmed: bool = False,
) -> None:
    if not experiment.running:
        raise ExperimentError(f"Experiment {experiment.id} has ended already.")
    if not confirmed:
        raise ConfirmationNeeded(f"Stopping experiment {experiment.id} needs confirming.")
    who = actor.name if actor else "the command line"
    end(experiment, ExperimentStatus.STOPPED, f"Stopped by {who}.", actor=actor,
        ip_address=ip_address)  # fmt: skip


def promote(
    experiment: Experiment,
    *,
    actor: User | None,
    ip_address: str | None = None,
    confirmed: bool = False,
) -> ModelVersion:
    """Make the challenger production (with its settings), once the rule says it is better.

    The Models page's "Roll back" returns to the champion, as after any promotion.
    """
    if not experiment.running:
        raise ExperimentError(f"Experiment {experiment.id} has ended already.")
    verdict = results(experiment).verdict
    if verdict.outcome != "better":
        raise ExperimentError(
            f"The rule does not say the challenger is better yet ({verdict.message}): "
            "nothing was changed."
        )
    challenger = experiment.challenger
    if challenger is None:
        raise ExperimentError("The challenger's version was deleted: nothing was changed.")
    if not confirmed:
        raise ConfirmationNeeded(f"Promoting {challenger.label} needs confirming.")
    return _promote(experiment, challenger, actor=actor, ip_address=ip_address)


def _promote(experiment, challenger, *, actor, ip_address=None) -> ModelVersion:
    experiment.verdict = "better"
    who = actor.name if actor else "srcflask (automatic promotion)"
    # Ended first, so that moving production does not count as moving it under a running
    # experiment (registry.set_alias ends those).
    end(experiment, ExperimentStatus.PROMOTED,
        f"The challenger was made production by {who}.", actor=actor,
        ip_address=ip_address)  # fmt: skip
    settings = dict(experiment.challenger_settings)
    if challenger.generation_settings != settings:
        record_event(
            "model.settings",
            actor=actor,
            target_label=challenger.label,
            ip_address=ip_address,
            before=challenger.generation_settings,
            after=settings,
            experiment=experiment.id,
        )
        challenger.generation_settings = settings
    registry.set_alias(challenger, "production", actor=actor, ip_address=ip_address)
    return challenger


def production_moved(version: ModelVersion) -> None:
    """Production now names `version`: an experiment whose champion it is not has ended."""
    experiment = running()
    if experiment is not None and experiment.champion_version_id != version.id:
        end(
            experiment,
            ExperimentStatus.STOPPED,
            f"Stopped: production was moved to {version.label}, so the champion changed.",
            actor=None,
        )


# -- results -------------------------------------------------------------------------


@dataclass
class DecisionFigure:
    decision: str
    count: int
    share: summary.Estimate


@dataclass
class ArmResults:
    arm: Arm
    label: str
    written: int = 0
    waiting: int = 0
    reviews: int = 0
    decisions: list[DecisionFigure] = field(default_factory=list)
    kept: summary.Estimate = field(default_factory=summary.Estimate.none)
    edit_distance: summary.Estimate = field(default_factory=summary.Estimate.none)
    seconds_to_decision: summary.Estimate = field(default_factory=summary.Estimate.none)
    sums: rule.Arm = field(default_factory=rule.Arm)


@dataclass
class Results:
    experiment: Experiment
    champion: ArmResults
    challenger: ArmResults
    verdict: rule.Verdict
    chart: LineChart

    @property
    def arms(self) -> tuple[ArmResults, ArmResults]:
        return (self.champion, self.challenger)


def kept_share_of(decision: Decision, kept_share: float | None) -> float:
    """The review's share of the text kept: accepted all, rejected none, else as stored."""
    if decision is Decision.ACCEPTED:
        return 1.0 if kept_share is None else kept_share
    if decision is Decision.REJECTED:
        return 0.0
    return kept_share or 0.0


def results(experiment: Experiment) -> Results:
    """Every figure of the experiment's page, from its machine texts and their reviews."""
    rows = db.session.execute(
        select(
            MachineText.arm,
            MachineText.status,
            MachineText.finished_at,
            Review.decision,
            Review.kept_share,
            Review.edit_distance,
            Review.created_at,
        )
        .outerjoin(Review, Review.machine_text_id == MachineText.id)
        .where(MachineText.experiment_id == experiment.id, MachineText.arm.is_not(None))
    ).all()
    arms = {arm: ArmResults(arm, experiment.arm_label(arm)) for arm in Arm}
    kept: dict[Arm, list[float]] = {arm: [] for arm in Arm}
    distances: dict[Arm, list[float]] = {arm: [] for arm in Arm}
    seconds: dict[Arm, list[float]] = {arm: [] for arm in Arm}
    decisions: dict[Arm, Counter] = {arm: Counter() for arm in Arm}
    timeline: list[tuple[datetime, Arm, float]] = []
    for row in rows:
        figures = arms[Arm(row.arm)]
        if row.status is MachineTextStatus.DONE:
            figures.written += 1
        elif row.status in UNFINISHED:
            figures.waiting += 1
        if row.decision is None:
            continue
        share = kept_share_of(row.decision, row.kept_share)
        figures.sums.add(share, row.decision is Decision.REJECTED)
        kept[figures.arm].append(share)
        decisions[figures.arm][row.decision] += 1
        if row.edit_distance is not None:
            distances[figures.arm].append(row.edit_distance)
        if row.finished_at is not None and row.created_at is not None:
            seconds[figures.arm].append(max((row.created_at - row.finished_at).total_seconds(), 0))
        timeline.append((row.created_at, figures.arm, share))
    for arm, figures in arms.items():
        figures.reviews = figures.sums.reviews
        figures.decisions = [
            DecisionFigure(
                d.value, decisions[arm][d], summary.share(decisions[arm][d], figures.reviews)
            )
            for d in Decision
        ]
        figures.kept = summary.mean(kept[arm])
        figures.edit_distance = summary.median(distances[arm])
        figures.seconds_to_decision = summary.median(seconds[arm])
    verdict = rule.decide(arms[Arm.CHAMPION].sums, arms[Arm.CHALLENGER].sums)
    chart = kept_share_chart(
        sorted(timeline, key=lambda point: point[0]),
        {arm: arms[arm].label for arm in Arm},
    )
    return Results(experiment, arms[Arm.CHAMPION], arms[Arm.CHALLENGER], verdict, chart)


def evaluate(experiment: Experiment) -> Results:
    """Read the results and act on the verdict: the guardrail stops a challenger that does
    worse; a better one is promoted when the experiment was started with auto_promote."""
    found = results(experiment)
    if not experiment.running:
        return found
    outcome = found.verdict.outcome
    if outcome != experiment.verdict:
        experiment.verdict = outcome
        db.session.commit()
    if outcome == "worse":
        end(experiment, ExperimentStatus.STOPPED,
            f"Stopped by the rule: {found.verdict.message.lower()}.", actor=None)  # fmt: skip
    elif outcome == "better" and experiment.auto_promote and experiment.challenger is not None:
        _promote(experiment, experiment.challenger, actor=None)
    return found


def after_review(machine_text: MachineText) -> None:
    """A review of `machine_text` was recorded (or undone): look at its experiment again."""
    experiment = machine_text.experiment
    if experiment is not None and experiment.running:
        evaluate(experiment)
