"""Model actions an admin starts on the Models page, run in the background.

Trying a prompt, measuring a version's speed and fetching a catalog model take
seconds to minutes: longer than a request may. Each is a `ModelTask` row handed
to the runner (a thread of the web process, or a Celery worker of the generation
queue), and the page follows the row. The protocol, as for generation jobs:

- `start_*` checks the request and adds a queued row that holds its slot (one
  measurement, one fetch, and one prompt per admin and version at a time: the
  unique `active_slot` refuses a second), commits, and hands the id over.
- `run` claims the row with a conditional UPDATE (only one claimer wins), beats
  its heart from a second thread while it works, and writes progress and the
  outcome only while its claim holds; the outcome frees the slot.
- `recover_stale` (on every look at the page) fails rows whose worker died or
  went quiet, and rows no worker took up, so none stays running for ever.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..jobs.work import process_alive, worker_id
from ..ml import catalog
from ..ml.catalog import CatalogError
from ..ml.engine import ModelLoadError, PromptError
from ..ml.importer import ImportFailed
from ..ml.settings import PRESETS, SettingsError
from ..models import ModelTask, ModelTaskKind, ModelTaskStatus, ModelVersion, User
from ..models.types import utcnow
from . import service as registry

log = logging.getLogger(__name__)

KIND = "model_task"  # the runner's name for this kind of job
ACTIVE = (ModelTaskStatus.QUEUED, ModelTaskStatus.RUNNING)
# How long a finished action's outcome stays beside its button.
SHOWN_FOR = timedelta(hours=1)
# Failures a person can act on; anything else is a bug, logged with its traceback.
EXPECTED = (
    registry.RegistryError,
    CatalogError,
    ImportFailed,
    ModelLoadError,
    PromptError,
    SettingsError,
    ValueError,
    OSError,
)


class TaskRefused(registry.RegistryError):
    """An action that cannot start now (one is running, or it was done before)."""


# -- starting --------------------------------------------------------------------------


def start_try(
    version: ModelVersion,
    prompt: str,
    preset: str,
    max_new_tokens: int,
    *,
    actor: User,
    ip_address: str | None = None,
) -> ModelTask:
    """Queue writing a continuation of `prompt` with `version`."""
    if preset not in PRESETS:
        raise registry.RegistryError(f"preset must be one of {', '.join(sorted(PRESETS))}")
    task = ModelTask(
        kind=ModelTaskKind.TRY,
        version=version,
        inputs={"prompt": prompt, "preset": preset, "max_new_tokens": max_new_tokens},
        active_slot=f"try:{version.id}:{actor.id}",
    )
    return _start(
        task,
        actor,
        ip_address,
        lambda _: (
            f"A prompt of yours is already being tried on {version.label}: "
            "wait for its text, then try the next."
        ),
    )


def start_speed(
    version: ModelVersion, *, actor: User | None, ip_address: str | None = None
) -> ModelTask:
    """Queue measuring how fast `version` writes (one measurement at a time: they disturb
    each other)."""
    task = ModelTask(kind=ModelTaskKind.SPEED, version=version, active_slot="speed")
    return _start(
        task,
        actor,
        ip_address,
        lambda running: (
            f"{running.version.label if running and running.version else 'A version'}"
            " is being measured now; one measurement at a time, as two would slow each other. "
            "Measure again when it has finished."
        ),
    )


def start_fetch(name: str, *, actor: User | None, ip_address: str | None = None) -> ModelTask:
    """Queue fetching the catalog model `name` and importing it (one fetch at a time)."""
    entry = catalog.get(name)  # CatalogError names the known ones
    fetched = registry.fetched_versions().get(entry.name)
    if fetched is not None:
        raise TaskRefused(f"{entry.title} is already fetched, as {fetched.label}.")
    task = ModelTask(kind=ModelTaskKind.FETCH, catalog_name=entry.name, active_slot="fetch")
    return _start(
        task,
        actor,
        ip_address,
        lambda running: (
            f"{running.catalog_name if running else 'A catalog model'} is being "
            "fetched now; one fetch at a time. Fetch this one when it has finished."
        ),
    )


def _start(task: ModelTask, actor: User | None, ip_address: str | None, busy) -> ModelTask:
    recover_stale()  # a dead worker's row must not hold the slot
    task.created_by = actor
    task.created_by_label = actor.email if actor else "command line"
    task.ip_address = ip_address
    slot = task.active_slot
    db.session.add(task)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        running = db.session.scalar(select(ModelTask).where(ModelTask.active_slot == slot))
        raise TaskRefused(busy(running)) from None
    from .. import jobs

    try:
        jobs.runner().submit([task.id], KIND)
    except Exception as error:  # a broker that is down: say so now, not after a timeout
        log.exception("could not hand model task %s to a worker", task.id)
        _end(
            task.id,
            None,
            ModelTaskStatus.FAILED,
            error=f"It could not be handed to a worker ({error}). Check that the task queue "
            "(Redis) and the workers are running, then try again.",
            claimed=False,
        )
    db.session.refresh(task)
    return task


# -- what the page shows ---------------------------------------------------------------


def get(task_id: int) -> ModelTask | None:
    return db.session.get(ModelTask, task_id)


def shown(user: User) -> dict[tuple[str, object], ModelTask]:
    """The action the page shows beside each button: the newest one of each slot, while it
    runs and for an hour after (a prompt tried: the admin's own). Keys: (kind, version id)
    or ("fetch", catalog name)."""
    recover_stale()
    rows = db.session.scalars(
        select(ModelTask)
        .where(or_(ModelTask.status.in_(ACTIVE), ModelTask.created_at >= utcnow() - SHOWN_FOR))
        .order_by(ModelTask.id)
    ).all()
    found: dict[tuple[str, object], ModelTask] = {}
    for task in rows:
        if task.kind is ModelTaskKind.TRY and task.created_by_id != user.id:
            continue
        about = task.catalog_name if task.kind is ModelTaskKind.FETCH else task.version_id
        found[(task.kind.value, about)] = task
    return found


def state(task: ModelTask) -> dict:
    """A task as the page's script follows it."""
    return {
        "id": task.id,
        "kind": task.kind.value,
        "status": task.status.value,
        "finished": task.status.finished,
        "stage": task.stage,
        "done": task.done,
        "total": task.total,
        "seconds": round(task.seconds, 1),
        "error": task.error,
    }


# -- the worker's side -----------------------------------------------------------------


def claim(task_id: int) -> bool:
    """Take a queued task for this worker."""
    now = utcnow()
    result = db.session.execute(
        update(ModelTask)
        .where(ModelTask.id == task_id, ModelTask.status == ModelTaskStatus.QUEUED)
        .values(
            status=ModelTaskStatus.RUNNING,
            claimed_by=worker_id(),
            heartbeat_at=now,
            started_at=now,
            stage="Starting",
        )
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def run(task_id: int) -> bool:
    """Claim a task and do it to its end; False when another worker has it (or had it)."""
    if not claim(task_id):
        return False
    me = worker_id()
    task = db.session.get(ModelTask, task_id)
    db.session.refresh(task)
    heart = Heartbeat(current_app._get_current_object(), task_id, me)
    heart.start()
    try:
        result = RUNS[task.kind](task, Progress(task_id, me))
    except EXPECTED as error:
        db.session.rollback()
        _end(task_id, me, ModelTaskStatus.FAILED, error=explain(error))
    except Exception as error:
        log.exception("model task %s failed", task_id)
        db.session.rollback()
        _end(
            task_id,
            me,
            ModelTaskStatus.FAILED,
            error=f"An unexpected error ({type(error).__name__}: {error}); the server log "
            "has the details.",
        )
    else:
        _end(task_id, me, ModelTaskStatus.DONE, result=result)
    finally:
        heart.stop()
    return True


def explain(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror + (f": {error.filename}" if error.filename else "")
    return str(error) or type(error).__name__


def _end(
    task_id: int,
    me: str | None,
    status: ModelTaskStatus,
    *,
    result: dict | None = None,
    error: str | None = None,
    claimed: bool = True,
) -> None:
    values = {
        "status": status,
        "finished_at": utcnow(),
        "error": error,
        "claimed_by": None,
        "active_slot": None,
    }
    if result is not None:
        values["result"] = result
        if result.get("version_id"):
            values["version_id"] = result["version_id"]
    query = update(ModelTask).where(ModelTask.id == task_id)
    if claimed:  # only while this worker's claim holds
        query = query.where(ModelTask.claimed_by == me, ModelTask.status == ModelTaskStatus.RUNNING)
    db.session.execute(query.values(**values).execution_options(synchronize_session=False))
    db.session.commit()


class Progress:
    """Writes a running task's stage, and its counts at most twice a second, on its row.

    Called as the importer's reports are: report(step) starts a step; report(_, done,
    total) moves its count.
    """

    def __init__(self, task_id: int, me: str):
        self.task_id, self.me = task_id, me
        self._written = 0.0

    def __call__(self, step: str, done: int | None = None, total: int | None = None) -> None:
        if done is None:
            values = {"stage": step[:300], "done": None, "total": None}
        else:
            now = time.monotonic()
            if now - self._written < 0.5 and (total is None or done < total):
                return
            self._written = now
            values = {"done": done, "total": total}
        db.session.execute(
            update(ModelTask)
            .where(ModelTask.id == self.task_id, ModelTask.claimed_by == self.me)
            .values(heartbeat_at=utcnow(), **values)
            .execution_options(synchronize_session=False)
        )
        db.session.commit()

    def count(self, done: int, total: int) -> None:
        self("", done, total)


class Heartbeat:
    """Beats a claimed task's heart every JOB_HEARTBEAT_SECONDS while it works, from a
    thread of its own: loading a model or downloading a wheel reports nothing for a while."""

    def __init__(self, app: Flask, task_id: int, me: str):
        self.app, self.task_id, self.me = app, task_id, me
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="srcflask-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _beat(self) -> None:
        interval = self.app.config["JOB_HEARTBEAT_SECONDS"]
        while not self._stop.wait(interval):
            try:
                with self.app.app_context():
                    db.session.execute(
                        update(ModelTask)
                        .where(ModelTask.id == self.task_id, ModelTask.claimed_by == self.me)
                        .values(heartbeat_at=utcnow())
                        .execution_options(synchronize_session=False)
                    )
                    db.session.commit()
            except Exception:  # a missed beat; the next one may do
                log.warning("could not beat the heart of model task %s", self.task_id)


def recover_stale() -> list[int]:
    """Fail the tasks whose worker died or stopped beating, and those no worker took up."""
    config = current_app.config
    now = utcnow()
    quiet = now - timedelta(seconds=config["JOB_STALE_SECONDS"])
    unclaimed = now - timedelta(seconds=config["JOB_VISIBILITY_SECONDS"])
    rows = db.session.execute(
        select(
            ModelTask.id,
            ModelTask.status,
            ModelTask.claimed_by,
            ModelTask.heartbeat_at,
            ModelTask.created_at,
        ).where(ModelTask.status.in_(ACTIVE))
    ).all()
    failed = []
    for task_id, status, claimed_by, heartbeat_at, created_at in rows:
        if status is ModelTaskStatus.RUNNING:
            dead = process_alive(claimed_by or "") is False
            if not dead and heartbeat_at is not None and heartbeat_at >= quiet:
                continue
            error = (
                "The worker doing this stopped before it finished (it was restarted, or ran "
                "out of memory). Try again."
            )
        elif created_at < unclaimed:
            minutes = round(config["JOB_VISIBILITY_SECONDS"] / 60)
            error = (
                f"No worker took this up within {minutes} minutes. Check that the workers are "
                "running, then try again."
            )
        else:
            continue
        result = db.session.execute(
            update(ModelTask)
            .where(
                ModelTask.id == task_id,
                ModelTask.status == status,
                ModelTask.claimed_by.is_(None)
                if claimed_by is None
                else ModelTask.claimed_by == claimed_by,
            )
            .values(
                status=ModelTaskStatus.FAILED,
                finished_at=now,
                error=error,
                claimed_by=None,
                active_slot=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            failed.append(task_id)
    db.session.commit()
    if failed:
        log.warning("Model task(s) %s failed: their worker stopped or never came", failed)
    return failed


# -- the three actions -----------------------------------------------------------------


def _version(task: ModelTask) -> ModelVersion:
    if task.version is None:
        raise registry.RegistryError("That version is no longer in the registry.")
    return task.version


def _try(task: ModelTask, report: Progress) -> dict:
    version = _version(task)
    inputs = task.inputs
    settings = PRESETS[inputs["preset"]].replace(max_new_tokens=inputs["max_new_tokens"])
    report(f"Getting {version.label} ready")
    generator = registry.generator_for(version)
    report("Writing")
    # A short call: it runs between two steps of a batch of documents, not after it.
    [result] = generator.generate([inputs["prompt"]], settings, report.count, short=True)
    answered = (utcnow() - task.created_at).total_seconds()
    return {
        "text": result.text,
        "generated_tokens": result.generated_tokens,
        "prompt_tokens": result.prompt_tokens,
        "seconds": round(result.seconds, 3),
        "tokens_per_second": round(result.tokens_per_second, 1),
        "truncated": result.truncated,
        "finish_reason": result.finish_reason,
        "answered_seconds": round(max(answered, result.seconds), 2),
    }


def _speed(task: ModelTask, report: Progress) -> dict:
    version = _version(task)
    report(f"Getting {version.label} ready")
    registry.generator_for(version)
    report("Timing greedy and beam-search runs")
    measured = registry.measure_speed(
        version, actor=task.created_by, report=report.count, ip_address=task.ip_address
    )
    return {
        "kept": measured["kept"],
        "sentence": registry.speed_sentence(version.label, measured),
    }


def _fetch(task: ModelTask, report: Progress) -> dict:
    outcome, made_production = registry.pull(
        task.catalog_name, actor=task.created_by, report=report, ip_address=task.ip_address
    )
    return {
        "version_id": outcome.version.id,
        "label": outcome.version.label,
        "created": outcome.created,
        "made_production": made_production,
    }


RUNS = {ModelTaskKind.TRY: _try, ModelTaskKind.SPEED: _speed, ModelTaskKind.FETCH: _fetch}
