"""Fine-tuning a version on reviewed machine text: the run as a job, and its new version.

`start()` checks there are enough reviews, takes a snapshot of them (review
ids on each side of a held-out split by document, and a hash of their texts),
queues a `TrainingRun` and hands it to the runner: the embedded runner's
training thread, or a Celery worker of the `training` queue. `run()` is the
worker's side: it claims the run, fine-tunes (`ml.training`), reporting each
step on the row and stopping when asked, scores the held-out reviews before
and after, and imports the result as a new version whose lineage names its
parent, the dataset, the hyperparameters, the metrics, who and when.

A worker that dies leaves its checkpoint: the run goes back to the queue
(`recover_stale`) and the next worker resumes from that step.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

from flask import current_app
from sqlalchemy import or_, select, update

from ..extensions import db
from ..jobs.work import process_alive, worker_id
from ..ml.engine import TextGenerator, document_prompt
from ..ml.training import (
    Example,
    FineTuner,
    Hyperparameters,
    Progress,
    TrainingCancelled,
    heldout_scores,
    snapshot,
    split_by_document,
)
from ..models import (
    Decision,
    ModelVersion,
    TrainingRun,
    TrainingStatus,
    User,
    record_event,
)
from ..models.types import utcnow
from . import service as registry
from .reviews import ReviewFilter, reviewed_pairs

log = logging.getLogger(__name__)

TRAINING = "training"  # the runner's name for this kind of job


class TrainingError(ValueError):
    """A fine-tuning request that cannot be done; the message says why."""


def examples() -> list[Example]:
    """Every accepted, edited or partly kept review: the document as the model saw it, then
    the final text."""
    learnable = ReviewFilter(decisions=(Decision.ACCEPTED, Decision.EDITED, Decision.KEPT_PART))
    return [
        Example(
            pair["review_id"],
            pair["document_id"],
            document_prompt(pair["context_title"], pair["context_body"]),
            pair["final_text"],
        )
        for pair in reviewed_pairs(learnable)
        if pair["final_text"] and pair["final_text"].strip()
    ]


def start(
    parent: ModelVersion,
    name: str,
    hyper: Hyperparameters,
    *,
    actor: User | None,
    ip_address: str | None = None,
) -> TrainingRun:
    """Queue a fine-tuning run of `parent` into a new version of `name`."""
    registry.check_name(name)
    found = examples()
    needed = current_app.config["TRAINING_MIN_REVIEWS"]
    if len(found) < needed:
        raise TrainingError(
            f"Fine-tuning needs at least {needed} accepted or edited reviews; there "
            f"{'is' if len(found) == 1 else 'are'} {len(found)}. "
            f"{needed - len(found)} more reviewed machine texts will do."
        )
    training, heldout = split_by_document(found, hyper.heldout_share, hyper.seed)
    if not heldout or not training:
        raise TrainingError("The reviews come from too few documents to hold some out.")
    run = TrainingRun(
        parent=parent,
        name=name,
        hyperparameters=hyper.as_dict(),
        dataset=snapshot(training, heldout),
        total_steps=FineTuner.steps_for(len(training), hyper),
        created_by=actor,
        created_by_label=actor.email if actor else "command line",
    )
    db.session.add(run)
    db.session.flush()
    record_event(
        "model.train",
        actor=actor,
        target_label=parent.label,
        ip_address=ip_address,
        run=run.id,
        name=name,
        reviews=len(found),
    )
    db.session.commit()
    from .. import jobs

    jobs.submit([run.id], TRAINING)
    return run


def cancel(run: TrainingRun, *, actor: User | None, ip_address: str | None = None) -> None:
    """Stop a run: a queued one at once, a running one at its next step (checkpoint kept)."""
    if run.status.finished:
        raise TrainingError(f"Training run {run.id} has already ended ({run.status.value}).")
    if run.status is TrainingStatus.QUEUED:
        run.status = TrainingStatus.CANCELLED
        run.finished_at = utcnow()
    run.cancel_requested = True
    record_event(
        "model.train_cancel",
        actor=actor,
        target_label=run.parent.label,
        ip_address=ip_address,
        run=run.id,
    )
    db.session.commit()


def all_runs(limit: int = 50) -> list[TrainingRun]:
    return db.session.scalars(
        select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)
    ).all()


# -- the worker's side ------------------------------------------------------------------


def claim(run_id: int) -> bool:
    """Take a queued run, or a running one whose worker has stopped reporting."""
    stale = utcnow() - _stale_after()
    result = db.session.execute(
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            TrainingRun.cancel_requested.is_(False),
            or_(
                TrainingRun.status == TrainingStatus.QUEUED,
                (TrainingRun.status == TrainingStatus.RUNNING) & (TrainingRun.heartbeat_at < stale),
            ),
        )
        .values(
            status=TrainingStatus.RUNNING,
            claimed_by=worker_id(),
            heartbeat_at=utcnow(),
            started_at=utcnow(),
            attempts=TrainingRun.attempts + 1,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _stale_after() -> timedelta:
    return timedelta(seconds=current_app.config["TRAINING_STALE_SECONDS"])


def recover_stale() -> list[int]:
    """Queue again the runs whose worker died (they resume from their checkpoint)."""
    stale = utcnow() - _stale_after()
    requeued = []
    running = db.session.execute(
        select(
            TrainingRun.id,
            TrainingRun.claimed_by,
            TrainingRun.heartbeat_at,
            TrainingRun.cancel_requested,
        ).where(TrainingRun.status == TrainingStatus.RUNNING)
    ).all()
    for run_id, claimed_by, heartbeat_at, cancelled in running:
        dead = process_alive(claimed_by or "") is False
        if not dead and heartbeat_at is not None and heartbeat_at >= stale:
            continue
        # A run cancelled while its worker was gone ends there; the others wait for a worker.
        after = (
            {"status": TrainingStatus.CANCELLED, "finished_at": utcnow()}
            if cancelled
            else {"status": TrainingStatus.QUEUED}
        )
        result = db.session.execute(
            update(TrainingRun)
            .where(TrainingRun.id == run_id, TrainingRun.claimed_by == claimed_by)
            .values(claimed_by=None, **after)
        )
        if result.rowcount == 1 and not cancelled:
            requeued.append(run_id)
    db.session.commit()
    if requeued:
        log.warning("Queued again training run(s) whose worker stopped: %s", requeued)
    return requeued


def queued_ids(older_than: float = 0) -> list[int]:
    """Queued runs, oldest first; only those created over `older_than` seconds ago."""
    query = select(TrainingRun.id).where(TrainingRun.status == TrainingStatus.QUEUED)
    if older_than:
        query = query.where(TrainingRun.created_at < utcnow() - timedelta(seconds=older_than))
    return db.session.scalars(query.order_by(TrainingRun.id)).all()


def run_pending() -> int:
    """Run every queued run here, one after the other; return how many ended."""
    recover_stale()
    ended = 0
    for run_id in queued_ids():
        if claim(run_id):
            run(run_id)
            ended += 1
    return ended


def workdir(run_id: int) -> Path:
    return Path(current_app.config["TRAINING_DIR"]) / f"run-{run_id}"


def run(run_id: int, on_progress=None) -> TrainingRun:
    """Fine-tune a run this worker has claimed, to the end, a stop or a failure."""
    run = db.session.get(TrainingRun, run_id)
    me = run.claimed_by
    try:
        return _run(run, me, on_progress)
    except TrainingCancelled:
        _finish(run, me, TrainingStatus.CANCELLED, error=None)
    except Exception as error:  # the row says what went wrong; the checkpoint stays
        log.exception("training run %s failed", run_id)
        db.session.rollback()
        _finish(run, me, TrainingStatus.FAILED, error=f"Training failed: {error}")
    return run


def _finish(run: TrainingRun, me: str | None, status: TrainingStatus, error: str | None) -> None:
    db.session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run.id, TrainingRun.claimed_by == me)
        .values(status=status, finished_at=utcnow(), error=error, claimed_by=None)
    )
    db.session.commit()
    db.session.refresh(run)


def _run(run: TrainingRun, me: str | None, on_progress) -> TrainingRun:
    hyper = Hyperparameters(**run.hyperparameters)
    by_id = {example.key: example for example in examples()}
    training = [by_id[i] for i in run.dataset["train_review_ids"] if i in by_id]
    heldout = [by_id[i] for i in run.dataset["heldout_review_ids"] if i in by_id]
    parent = run.parent
    config = current_app.config
    generator = TextGenerator(  # its own copy: training changes the weights it holds
        registry.artifact_path(parent),
        label=f"{parent.label} (training)",
        prompt_format=registry.prompt_format_of(parent),
        device=config["GENERATION_DEVICE"],
        threads=config["GENERATION_THREADS"] or None,
        dtype="float32",
        cpu_linear=config["GENERATION_CPU_LINEAR"],
        pack_weights=False,  # its weights are trained
    )
    metrics = dict(run.metrics or {})
    if "before" not in metrics:
        metrics["before"] = heldout_scores(generator, heldout)
        _report(run, me, metrics=metrics)
    tuner = FineTuner(generator, training, hyper, workdir(run.id))

    def progress(step: Progress) -> bool:
        if on_progress is not None:
            on_progress(step)
        return _report(run, me, step=step.step, loss=step.loss)

    tuner.run(progress)
    if tuner.started_at_step:  # a worker stopped before: this one took over from its checkpoint
        metrics["resumed_at_step"] = tuner.started_at_step
    metrics["after"] = heldout_scores(generator, heldout)
    metrics["train_examples"], metrics["heldout_examples"] = len(training), len(heldout)
    _report(run, me, metrics=metrics)
    with tempfile.TemporaryDirectory(prefix="srcflask-trained-") as folder:
        tuner.save_merged(Path(folder) / "model")
        license_file = registry.license_path(parent)
        outcome = registry.import_model(
            str(Path(folder) / "model"),
            run.name,
            actor=run.created_by,
            description=f"Fine-tuned from {parent.label} on {len(training)} reviewed texts "
            f"(training run {run.id}).",
            tags=["fine-tuned"],
            prompt_format=parent.prompt_format,
            system_prompt=parent.system_prompt,
            provenance=registry.Provenance(
                source=f"training run {run.id} of {parent.label}",
                license=parent.license,
                license_url=parent.license_url,
                license_file=license_file,
            ),
        )
    version = outcome.version
    version.parent_id = parent.id
    version.lineage = {
        "parent": parent.label,
        "training_run": run.id,
        "method": run.method,
        "dataset": run.dataset,
        "hyperparameters": run.hyperparameters,
        "metrics": metrics,
        "trained_by": run.created_by_label,
        "started_at": run.started_at.isoformat(timespec="seconds") if run.started_at else None,
        "finished_at": utcnow().isoformat(timespec="seconds"),
    }
    run.result = version
    run.metrics = metrics
    db.session.commit()
    compare_with_parent(version)
    _finish(run, me, TrainingStatus.DONE, error=None)
    shutil.rmtree(workdir(run.id), ignore_errors=True)  # the version holds the result now
    return run


def _report(run: TrainingRun, me: str | None, **values) -> bool:
    """Write progress on the run (and beat its heart); False when it should stop."""
    result = db.session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run.id, TrainingRun.claimed_by == me)
        .values(heartbeat_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(run)
    return result.rowcount == 1 and not run.cancel_requested


# -- comparing a fine-tuned version with its parent ----------------------------------------

# Held-out reviews each model writes a text for, at most, when comparing: generation is
# the slow part (two models, beam search).
COMPARE_GENERATED = 10


def heldout_examples(version: ModelVersion) -> list[Example]:
    """The reviews held out from `version`'s training (its lineage names them)."""
    ids = set((version.lineage or {}).get("dataset", {}).get("heldout_review_ids", []))
    return [example for example in examples() if example.key in ids]


def compare_with_parent(version: ModelVersion, progress=None) -> dict:
    """Score a fine-tuned version and its parent side by side on the held-out reviews.

    For each: bits per character of the editors' final texts after their documents,
    and the median normalised edit distance between the text it writes for a held-out
    document (its own settings) and the editor's text. Kept in the version's lineage.
    """
    from rapidfuzz.distance import Levenshtein

    if version.parent_id is None:
        raise TrainingError(f"{version.label} was not fine-tuned from another version.")
    parent = db.session.get(ModelVersion, version.parent_id)
    if parent is None:
        raise TrainingError(f"The parent of {version.label} is no longer in the registry.")
    heldout = heldout_examples(version)
    if not heldout:
        raise TrainingError(f"None of the reviews held out from {version.label} remain.")
    written = heldout[:COMPARE_GENERATED]
    comparison = {"examples": len(heldout), "generated_examples": len(written)}
    for role, model in (("parent", parent), ("version", version)):
        generator = registry.generator_for(model)
        scores = heldout_scores(generator, heldout)
        results = generator.generate(
            [example.context for example in written], registry.settings_for(model)
        )
        distances = sorted(
            Levenshtein.normalized_distance(result.text.strip(), example.target.strip())
            for result, example in zip(results, written, strict=True)
        )
        comparison[role] = {
            "label": model.label,
            "bits_per_char": scores["bits_per_char"],
            "median_edit_distance": distances[len(distances) // 2] if distances else None,
            "samples": [
                {"context_end": ex.context[-200:], "editor": ex.target, "model": r.text}
                for ex, r in list(zip(written, results, strict=True))[:3]
            ],
        }
        if progress is not None:
            progress(role)
    comparison["measured_at"] = utcnow().isoformat(timespec="seconds")
    version.lineage = {**(version.lineage or {}), "comparison": comparison}
    db.session.commit()
    return comparison
