"""Running generation jobs, whichever runner delivers them.

A job is a database row (a machine text, or a generation job from the API).
A runner claims queued rows with a conditional UPDATE (only one claimer can
win), runs them as engine batches with the production model, and writes each
result only while it still holds the claim. So a job delivered twice is
written once, and a job whose worker died is found by its stale heartbeat and
queued again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import Select, func, or_, select, tuple_, update
from sqlalchemy.exc import DBAPIError

from ..experiments import service as experiments
from ..extensions import db
from ..ml.engine import GenerationResult, document_prompt
from ..ml.settings import GenerationSettings, another_text_settings
from ..models import Arm, Document, MachineText, Revision
from ..models.api import GenerationJob
from ..models.jobs import JobStatus
from ..models.types import utcnow
from ..registry import service as registry
from .messages import failure_reason

log = logging.getLogger(__name__)

NO_PRODUCTION_MODEL = (
    "No production model is set, so no machine text can be written. An admin can choose "
    "one on the Models page (or run `flask --app srcflask models pull-default`)."
)

# Set when a job is queued in this process (the embedded runner's saves): a running batch
# then looks for it at its next step, not at its next claim interval.
queued_here = threading.Event()

_process_token = uuid.uuid4().hex[:8]
_process_pid = os.getpid()


def worker_id() -> str:
    """This process's name in `claimed_by`: host, pid and a random token."""
    global _process_token, _process_pid
    if os.getpid() != _process_pid:  # a forked child is a different worker
        _process_pid, _process_token = os.getpid(), uuid.uuid4().hex[:8]
    return f"{socket.gethostname()}:{_process_pid}:{_process_token}"


@dataclass(frozen=True)
class JobInput:
    """What one claimed job needs: its prompt, and the version and settings that write it."""

    prompt: str
    writer: experiments.Writer

    @property
    def batch_key(self) -> tuple[int, GenerationSettings]:
        """Jobs with the same key run in one batch."""
        return (self.writer.version.id, self.writer.settings)


@dataclass(frozen=True)
class JobKind:
    """One table of jobs, and where its prompts and settings come from."""

    name: str
    model: type
    noun: str  # how messages name one job's text
    # Whether queued jobs join a running batch: machine texts of one arm share one
    # version's settings; API jobs each bring their own.
    joins_running_batches: bool = False

    def inputs(self, ids: list[int]) -> dict[int, JobInput | None]:
        """Each claimed job still there, with its input; None where no model can write it."""
        raise NotImplementedError

    def with_owner(self, *statuses: JobStatus) -> Select:
        """Jobs in `statuses` with the id of the person they are for, as `owner`."""
        raise NotImplementedError

    def same_writer(self, job: JobInput):
        """A condition on queued jobs that may join a batch of `job`'s (None: any)."""
        return None


class MachineTextJobs(JobKind):
    def inputs(self, ids):
        production = experiments.production_writer()
        experiment = experiments.running()
        rows = db.session.execute(
            select(
                MachineText.id,
                MachineText.number,
                MachineText.experiment_id,
                MachineText.arm,
                Revision.title,
                Revision.body,
            )
            .join(Revision, Revision.id == MachineText.revision_id)
            .where(MachineText.id.in_(ids), MachineText.claimed_by == worker_id())
        ).all()
        found: dict[int, JobInput | None] = {}
        for row in rows:
            writer = experiments.writer_of(experiment, row.experiment_id, row.arm, production)
            if writer is None:
                found[row.id] = None
                continue
            if row.number > 1:
                # A text written in place of a rejected one must differ from it (Write another).
                writer = replace(writer, settings=another_text_settings(writer.settings))
            found[row.id] = JobInput(document_prompt(row.title, row.body), writer)
        return found

    def with_owner(self, *statuses):
        return (
            select(MachineText.id, MachineText.queued_at, Document.owner_id.label("owner"))
            .join(Revision, Revision.id == MachineText.revision_id)
            .join(Document, Document.id == Revision.document_id)
            .where(MachineText.status.in_(statuses))
        )

    def same_writer(self, job):
        # Only the same arm's texts: another arm's would be claimed only to be handed back.
        if job.writer.arm is Arm.CHALLENGER:
            return MachineText.arm == Arm.CHALLENGER.value
        return or_(MachineText.arm.is_(None), MachineText.arm == Arm.CHAMPION.value)


class ApiJobs(JobKind):
    def inputs(self, ids):
        production = experiments.production_writer()
        rows = db.session.execute(
            select(GenerationJob.id, GenerationJob.prompt, GenerationJob.settings).where(
                GenerationJob.id.in_(ids), GenerationJob.claimed_by == worker_id()
            )
        ).all()
        return {
            row.id: JobInput(
                row.prompt,
                replace(production, settings=GenerationSettings.from_dict(row.settings)),
            )
            if production is not None
            else None
            for row in rows
        }

    def with_owner(self, *statuses):
        return select(
            GenerationJob.id, GenerationJob.queued_at, GenerationJob.user_id.label("owner")
        ).where(GenerationJob.status.in_(statuses))


MACHINE_TEXTS = MachineTextJobs("machine_text", MachineText, "machine text", True)
API_JOBS = ApiJobs("generation", GenerationJob, "text")
KINDS = (MACHINE_TEXTS, API_JOBS)


def _mine(kind: JobKind):
    return kind.model.claimed_by == worker_id()


# -- claiming ------------------------------------------------------------------------


def fair_order(kind: JobKind, only=None) -> Select:
    """Queued jobs in the order they are claimed: round-robin across the people they are for.

    Each person's oldest queued job comes first, then everyone's second, and so
    on, so one person's burst of saves does not make everyone else wait behind it.
    Columns: id, turn (1 for a person's oldest job), queued_at. `only`: a condition the
    jobs must meet besides (the turns are counted among those that do).
    """
    queued = kind.with_owner(JobStatus.QUEUED)
    if only is not None:
        queued = queued.where(only)
    queued = queued.subquery()
    turn = (
        func.row_number()
        .over(partition_by=queued.c.owner, order_by=(queued.c.queued_at, queued.c.id))
        .label("turn")
    )
    return select(queued.c.id, turn, queued.c.queued_at)


def queue_position(kind: JobKind, job_id: int) -> int | None:
    """1 for the next job to be claimed, 2 for the one after...; None unless queued."""
    order = fair_order(kind).subquery()
    this = db.session.execute(select(order).where(order.c.id == job_id)).first()
    if this is None:
        return None
    ahead = db.session.scalar(
        select(func.count())
        .select_from(order)
        .where(
            tuple_(order.c.turn, order.c.queued_at, order.c.id)
            < tuple_(this.turn, this.queued_at, this.id)
        )
    )
    return ahead + 1


def promote_waiting(kind: JobKind) -> list[int]:
    """Queue the waiting jobs of people who have fewer than JOB_MAX_QUEUED_PER_USER in line."""
    cap = current_app.config["JOB_MAX_QUEUED_PER_USER"]
    waiting = db.session.execute(
        kind.with_owner(JobStatus.WAITING).order_by(kind.model.queued_at, kind.model.id)
    ).all()
    if not waiting:
        return []
    in_line = kind.with_owner(JobStatus.QUEUED, JobStatus.RUNNING).subquery()
    active = dict(
        db.session.execute(select(in_line.c.owner, func.count()).group_by(in_line.c.owner)).all()
    )
    promoted: list[int] = []
    model = kind.model
    for row in waiting:
        if active.get(row.owner, 0) >= cap:
            continue
        result = db.session.execute(
            update(model)
            .where(model.id == row.id, model.status == JobStatus.WAITING)
            .values(status=JobStatus.QUEUED)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            promoted.append(row.id)
            active[row.owner] = active.get(row.owner, 0) + 1
    db.session.commit()
    return promoted


def claim(kind: JobKind, candidate_ids: Iterable[int], limit: int, only=None) -> list[int]:
    """Claim up to `limit` jobs: the given ids first, then others (meeting `only`, a
    condition on the jobs, when given) in fair order."""
    model = kind.model
    wanted = list(dict.fromkeys(candidate_ids))
    promote_waiting(kind)
    order = fair_order(kind, only).subquery()
    others = db.session.scalars(
        select(order.c.id).order_by(order.c.turn, order.c.queued_at, order.c.id).limit(limit * 2)
    ).all()
    claimed: list[int] = []
    now = utcnow()
    for job_id in [*wanted, *[i for i in others if i not in wanted]]:
        if len(claimed) >= limit:
            break
        result = db.session.execute(
            update(model)
            .where(model.id == job_id, model.status == JobStatus.QUEUED)
            .values(
                status=JobStatus.RUNNING,
                claimed_by=worker_id(),
                started_at=now,
                heartbeat_at=now,
                progress_tokens=0,
                attempts=model.attempts + 1,
                finished_at=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(job_id)
    db.session.commit()
    return claimed


def pending_ids(kind: JobKind, limit: int, older_than: float = 0) -> list[int]:
    """Queued job ids, oldest first; only those queued over `older_than` seconds ago."""
    model = kind.model
    query = select(model.id).where(model.status == JobStatus.QUEUED)
    if older_than:
        query = query.where(model.queued_at < utcnow() - timedelta(seconds=older_than))
    return db.session.scalars(query.order_by(model.queued_at, model.id).limit(limit)).all()


# -- recovery ------------------------------------------------------------------------


def process_alive(claimed_by: str) -> bool | None:
    """Whether the process named in a claim still runs; None when it is on another host."""
    host, _, rest = claimed_by.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_stale(kind: JobKind | None = None) -> list[int]:
    """Queue again the running jobs whose worker died; give up on ones that keep dying.

    A job is stale when its heartbeat is older than JOB_STALE_SECONDS, or at
    once when the process that claimed it on this host no longer exists.
    Without `kind`, every kind of job is looked at.
    """
    if kind is None:
        return [i for k in KINDS for i in recover_stale(k)]
    model, config = kind.model, current_app.config
    cutoff = utcnow() - timedelta(seconds=config["JOB_STALE_SECONDS"])
    running = db.session.execute(
        select(model.id, model.claimed_by, model.heartbeat_at, model.attempts).where(
            model.status == JobStatus.RUNNING
        )
    ).all()
    requeued: list[int] = []
    for job_id, claimed_by, heartbeat_at, attempts in running:
        dead = process_alive(claimed_by or "") is False
        if not dead and heartbeat_at is not None and heartbeat_at >= cutoff:
            continue
        stale = update(model).where(
            model.id == job_id, model.status == JobStatus.RUNNING, model.claimed_by == claimed_by
        )
        if attempts >= config["JOB_MAX_ATTEMPTS"]:
            db.session.execute(
                stale.values(
                    status=JobStatus.FAILED,
                    finished_at=utcnow(),
                    claimed_by=None,
                    error=f"Gave up after {attempts} attempts: the worker stopped every time. "
                    "Retry to try again.",
                )
            )
            continue
        result = db.session.execute(
            stale.values(status=JobStatus.QUEUED, claimed_by=None, progress_tokens=0)
        )
        if result.rowcount == 1:
            requeued.append(job_id)
    db.session.commit()
    if requeued:
        log.warning(
            "Queued again %d %s job(s) whose worker stopped: %s", len(requeued), kind.name, requeued
        )
    return requeued


# -- running -------------------------------------------------------------------------


class _Heartbeat:
    """Refresh the claim's heartbeat from a side thread while a batch runs."""

    def __init__(self, app: Flask, kind: JobKind, ids: list[int], me: str):
        self.app, self.kind, self.ids, self.me = app, kind, ids, me
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="srcflask-heartbeat", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        model = self.kind.model
        interval = self.app.config["JOB_HEARTBEAT_SECONDS"]
        while not self.stop.wait(interval):
            try:
                with self.app.app_context():
                    db.session.execute(
                        update(model)
                        .where(
                            model.id.in_(list(self.ids)),  # jobs join while it runs
                            model.claimed_by == self.me,
                            model.status == JobStatus.RUNNING,
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    db.session.commit()
            except Exception:  # a missed beat is retried at the next one
                log.exception("heartbeat failed")


class _ProgressWriter:
    """Write each job's tokens-so-far to its row, at most every `interval` seconds.

    Called with one count for a list of jobs (`ids`), or with `{job id: tokens}`.
    """

    def __init__(self, kind: JobKind, ids: list[int] | None = None, interval: float = 0.5):
        self.kind, self.ids, self.interval = kind, ids, interval
        self.last = 0.0
        self.last_claim = 0.0

    def __call__(self, done: int | dict[int, int], total: int | None = None) -> None:
        counts = done if isinstance(done, dict) else dict.fromkeys(self.ids, done)
        now = time.monotonic()
        finishing = total is not None and not isinstance(done, dict) and done >= total
        if now - self.last < self.interval and not finishing:
            return
        self.last = now
        model = self.kind.model
        by_count: dict[int, list[int]] = {}
        for job_id, tokens in counts.items():
            by_count.setdefault(tokens, []).append(job_id)
        for tokens, ids in by_count.items():
            db.session.execute(
                update(model)
                .where(model.id.in_(ids), _mine(self.kind))
                .values(progress_tokens=tokens, heartbeat_at=utcnow())
            )
        db.session.commit()

    def may_claim(self) -> bool:
        """Whether to look for queued jobs now: at most once per interval, not every step,
        unless a job was queued in this process since the last look."""
        now = time.monotonic()
        if not queued_here.is_set() and now - self.last_claim < self.interval:
            return False
        queued_here.clear()  # before the claim: a job queued after it sets it again
        self.last_claim = now
        return True


def fail(kind: JobKind, ids: list[int], message: str) -> None:
    model = kind.model
    db.session.execute(
        update(model)
        .where(model.id.in_(ids), _mine(kind), model.status == JobStatus.RUNNING)
        .values(status=JobStatus.FAILED, error=message, finished_at=utcnow(), claimed_by=None)
    )
    db.session.commit()


def _write_result(kind: JobKind, job_id: int, result: GenerationResult) -> bool:
    model = kind.model
    # The settings as run: a sampled text's seed is chosen per document (ml.sampling).
    extra = {"settings": result.settings} if result.settings else {}
    if hasattr(model, "alternatives"):
        extra["alternatives"] = list(result.alternatives) or None
    written = db.session.execute(
        update(model)
        .where(model.id == job_id, _mine(kind), model.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.DONE,
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            generated_tokens=result.generated_tokens,
            truncated=result.truncated,
            progress_tokens=result.generated_tokens,
            finished_at=utcnow(),
            claimed_by=None,
            error=None,
            **extra,
        )
    )
    return written.rowcount == 1


def run_claimed(kind: JobKind, ids: list[int]) -> int:
    """Generate for jobs this process has claimed, then queue the jobs waiting behind them.

    Returns how many jobs ran: those given, and those that joined their batch.
    """
    if not ids:
        return 0
    try:
        return _run_claimed(kind, ids)
    finally:
        _queue_waiting(kind)


def _queue_waiting(kind: JobKind) -> None:
    """Queue the jobs that waited behind the ones just run, and hand them to the runner."""
    from . import submit

    try:
        promoted = promote_waiting(kind)
    except DBAPIError:
        db.session.rollback()
        log.warning("could not queue waiting %s jobs now; the next claim will", kind.name)
        return
    if promoted:
        submit(promoted, kind)


def _run_claimed(kind: JobKind, ids: list[int]) -> int:
    """Generate for jobs this process has claimed: one batch per version and settings."""
    try:
        inputs = kind.inputs(ids)
    except DBAPIError:
        # The database, not the model: keep the claim; the job is taken back once stale.
        db.session.rollback()
        raise
    unwritable = [i for i, job in inputs.items() if job is None]
    if unwritable:
        fail(kind, unwritable, NO_PRODUCTION_MODEL)
    groups: dict[tuple, list[int]] = {}
    for job_id, job in inputs.items():
        if job is not None:
            groups.setdefault(job.batch_key, []).append(job_id)
    app = current_app._get_current_object()
    ran = len(ids) - len(inputs) + len(unwritable)  # rows gone meanwhile, and those failed
    with _Heartbeat(app, kind, [i for g in groups.values() for i in g], worker_id()) as beat:
        for group in groups.values():
            writer = inputs[group[0]].writer
            try:
                generator = registry.generator_for(writer.version)
            except DBAPIError:
                db.session.rollback()
                raise
            except Exception as error:
                log.exception("cannot load %s for %s jobs", writer.version.label, kind.name)
                db.session.rollback()
                reason = failure_reason(error)
                if writer.arm is Arm.CHALLENGER and experiments.cannot_load(writer.version, reason):
                    release(kind, group)  # production writes them now, out of the experiment
                    continue
                fail(kind, group, f"The model {writer.version.label} could not be loaded: {reason}")
                ran += len(group)
                continue
            prompts = {i: inputs[i].prompt for i in group}
            ran += _run_batch(kind, generator, inputs[group[0]], group, prompts, beat)
    return ran


def _run_batch(kind, generator, first: JobInput, ids, prompts, heartbeat=None) -> int:
    """Generate for claimed jobs with one writer, writing each result as it is ready.

    Jobs of the same kind and writer queued meanwhile join the running batch at a
    step boundary (continuous batching), while fewer than GENERATION_BATCH_SIZE run
    and the engine's row cap allows. Returns how many jobs it ran, joined ones included.
    """
    settings = first.writer.settings
    _assign(kind, first.writer, ids)
    written: list[int] = []
    joined: list[int] = []
    progress = _ProgressWriter(kind)

    def more(count: int) -> list[tuple[int, str]]:
        running = len(ids) + len(joined) - len(written)
        count = min(count, current_app.config["GENERATION_BATCH_SIZE"] - running)
        if count < 1 or not progress.may_claim():
            return []
        new = claim(kind, [], limit=count, only=kind.same_writer(first))
        if not new:
            return []
        inputs = kind.inputs(new)
        key = first.batch_key
        same = [i for i in new if inputs.get(i) is not None and inputs[i].batch_key == key]
        other = [i for i in new if i not in same]
        if other:  # another writer: back to the queue, for a batch of their own
            release(kind, other)
        if not same:
            return []
        joined.extend(same)
        _assign(kind, first.writer, same, batch_size=running + len(same))
        if heartbeat is not None:
            heartbeat.ids.extend(same)
        prompts.update({i: inputs[i].prompt for i in same})
        return [(i, inputs[i].prompt) for i in same]

    def on_result(job_id: int, result: GenerationResult) -> None:
        if _write_result(kind, job_id, result):
            written.append(job_id)
        else:
            log.warning(
                "result for %s job %s not written: another worker holds it", kind.name, job_id
            )
        db.session.commit()

    try:
        generator.generate_continuously(
            [(i, prompts[i]) for i in ids],
            settings,
            more=more if kind.joins_running_batches else None,
            on_result=on_result,
            on_progress=progress,
        )
    except DBAPIError:
        # Progress or a result could not be written: the database went away, not the model.
        db.session.rollback()
        raise
    except Exception as error:
        db.session.rollback()
        left = [i for i in [*ids, *joined] if i not in written]
        if len(ids) + len(joined) > 1:
            # One bad prompt must not fail the others: run each that is left on its own.
            log.warning(
                "batch of %d failed (%s); running each alone", len(ids) + len(joined), error
            )
            for job_id in left:
                _run_alone(kind, generator, settings, job_id, prompts[job_id])
            return len(ids) + len(joined)
        log.exception("generation failed for %s job %s", kind.name, ids[0])
        fail(kind, left, f"The model could not write this {kind.noun}: {failure_reason(error)}")
    return len(ids) + len(joined)


def _run_alone(kind, generator, settings, job_id: int, prompt: str) -> None:
    try:
        [result] = generator.generate([prompt], settings, progress=_ProgressWriter(kind, [job_id]))
    except DBAPIError:
        db.session.rollback()
        raise
    except Exception as error:
        db.session.rollback()
        log.exception("generation failed for %s job %s", kind.name, job_id)
        fail(kind, [job_id], f"The model could not write this {kind.noun}: {failure_reason(error)}")
        return
    _write_result(kind, job_id, result)
    db.session.commit()


def _assign(kind, writer: experiments.Writer, ids, batch_size: int | None = None) -> None:
    """Record on claimed jobs which model version and settings write them, in how big a batch."""
    model = kind.model
    db.session.execute(
        update(model)
        .where(model.id.in_(ids), _mine(kind))
        .values(
            model_version_id=writer.version.id,
            settings=writer.settings.to_dict(),
            max_new_tokens=writer.settings.max_new_tokens,
            batch_size=batch_size or len(ids),
        )
    )
    db.session.commit()


def release(kind: JobKind, ids: list[int]) -> None:
    """Hand claimed jobs that this batch cannot take back to the queue, untouched."""
    model = kind.model
    db.session.execute(
        update(model)
        .where(model.id.in_(ids), _mine(kind), model.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.QUEUED,
            claimed_by=None,
            started_at=None,
            attempts=model.attempts - 1,
        )
    )
    db.session.commit()


def run_pending(max_batches: int | None = None, kinds=KINDS) -> int:
    """Claim and run queued jobs batch by batch until none are left; return how many ran."""
    batch_size = current_app.config["GENERATION_BATCH_SIZE"]
    done = batches = 0
    while max_batches is None or batches < max_batches:
        ran = 0
        for kind in kinds:
            ran += run_claimed(kind, claim(kind, [], batch_size))
        if not ran:
            break
        done += ran
        batches += 1
    return done
