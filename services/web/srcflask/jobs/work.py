"""Running generation jobs, whichever runner delivers them.

The `machine_texts` row is the job: a runner claims queued rows with a
conditional UPDATE (only one claimer can win), runs them as one engine batch
with the production model, and writes each result only while it still holds
the claim. So a job delivered twice is written once, and a job whose worker
died is found by its stale heartbeat and queued again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import select, update

from .. import registry
from ..extensions import db
from ..ml.engine import GenerationResult
from ..models import MachineText, MachineTextStatus, Revision
from ..models.types import utcnow

log = logging.getLogger(__name__)

NO_PRODUCTION_MODEL = (
    "No production model is set, so no machine text can be written. An admin can choose "
    "one on the Models page (or run `flask --app srcflask models pull-default`)."
)

_process_token = uuid.uuid4().hex[:8]
_process_pid = os.getpid()


def worker_id() -> str:
    """This process's name in `claimed_by`: host, pid and a random token."""
    global _process_token, _process_pid
    if os.getpid() != _process_pid:  # a forked child is a different worker
        _process_pid, _process_token = os.getpid(), uuid.uuid4().hex[:8]
    return f"{socket.gethostname()}:{_process_pid}:{_process_token}"


def _claimed_by_me():
    return MachineText.claimed_by == worker_id()


# -- claiming ------------------------------------------------------------------------


def claim(candidate_ids: Iterable[int], limit: int) -> list[int]:
    """Claim up to `limit` jobs: the given ids first, then the oldest queued ones."""
    wanted = list(dict.fromkeys(candidate_ids))
    others = db.session.scalars(
        select(MachineText.id)
        .where(MachineText.status == MachineTextStatus.QUEUED)
        .order_by(MachineText.queued_at, MachineText.id)
        .limit(limit * 2)
    ).all()
    claimed: list[int] = []
    now = utcnow()
    for machine_text_id in [*wanted, *[i for i in others if i not in wanted]]:
        if len(claimed) >= limit:
            break
        result = db.session.execute(
            update(MachineText)
            .where(
                MachineText.id == machine_text_id, MachineText.status == MachineTextStatus.QUEUED
            )
            .values(
                status=MachineTextStatus.RUNNING,
                claimed_by=worker_id(),
                started_at=now,
                heartbeat_at=now,
                progress_tokens=0,
                attempts=MachineText.attempts + 1,
                finished_at=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(machine_text_id)
    db.session.commit()
    return claimed


def pending_ids(limit: int, older_than: float = 0) -> list[int]:
    """Queued job ids, oldest first; only those queued over `older_than` seconds ago."""
    query = select(MachineText.id).where(MachineText.status == MachineTextStatus.QUEUED)
    if older_than:
        query = query.where(MachineText.queued_at < utcnow() - timedelta(seconds=older_than))
    return db.session.scalars(
        query.order_by(MachineText.queued_at, MachineText.id).limit(limit)
    ).all()


# -- recovery ------------------------------------------------------------------------


def _process_alive(claimed_by: str) -> bool | None:
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


def recover_stale() -> list[int]:
    """Queue again the running jobs whose worker died; give up on ones that keep dying.

    A job is stale when its heartbeat is older than JOB_STALE_SECONDS, or at
    once when the process that claimed it on this host no longer exists.
    """
    config = current_app.config
    cutoff = utcnow() - timedelta(seconds=config["JOB_STALE_SECONDS"])
    running = db.session.execute(
        select(
            MachineText.id, MachineText.claimed_by, MachineText.heartbeat_at, MachineText.attempts
        ).where(MachineText.status == MachineTextStatus.RUNNING)
    ).all()
    requeued: list[int] = []
    for machine_text_id, claimed_by, heartbeat_at, attempts in running:
        dead = _process_alive(claimed_by or "") is False
        if not dead and heartbeat_at is not None and heartbeat_at >= cutoff:
            continue
        stale = update(MachineText).where(
            MachineText.id == machine_text_id,
            MachineText.status == MachineTextStatus.RUNNING,
            MachineText.claimed_by == claimed_by,
        )
        if attempts >= config["JOB_MAX_ATTEMPTS"]:
            db.session.execute(
                stale.values(
                    status=MachineTextStatus.FAILED,
                    finished_at=utcnow(),
                    claimed_by=None,
                    error=f"Gave up after {attempts} attempts: the worker stopped every time. "
                    "Retry to try again.",
                )
            )
            continue
        result = db.session.execute(
            stale.values(status=MachineTextStatus.QUEUED, claimed_by=None, progress_tokens=0)
        )
        if result.rowcount == 1:
            requeued.append(machine_text_id)
    db.session.commit()
    if requeued:
        log.warning("Queued again %d job(s) whose worker stopped: %s", len(requeued), requeued)
    return requeued


# -- running -------------------------------------------------------------------------


class _Heartbeat:
    """Refresh the claim's heartbeat from a side thread while a batch runs."""

    def __init__(self, app: Flask, ids: list[int], me: str):
        self.app, self.ids, self.me = app, ids, me
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="srcflask-heartbeat", daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)

    def _beat(self) -> None:
        interval = self.app.config["JOB_HEARTBEAT_SECONDS"]
        while not self.stop.wait(interval):
            try:
                with self.app.app_context():
                    db.session.execute(
                        update(MachineText)
                        .where(
                            MachineText.id.in_(self.ids),
                            MachineText.claimed_by == self.me,
                            MachineText.status == MachineTextStatus.RUNNING,
                        )
                        .values(heartbeat_at=utcnow())
                    )
                    db.session.commit()
            except Exception:  # a missed beat is retried at the next one
                log.exception("heartbeat failed")


class _ProgressWriter:
    """Write tokens-so-far to the rows, at most every `interval` seconds."""

    def __init__(self, ids: list[int], interval: float = 0.5):
        self.ids, self.interval = ids, interval
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval and done < total:
            return
        self.last = now
        db.session.execute(
            update(MachineText)
            .where(MachineText.id.in_(self.ids), _claimed_by_me())
            .values(progress_tokens=done, heartbeat_at=utcnow())
        )
        db.session.commit()


def fail(ids: list[int], message: str) -> None:
    db.session.execute(
        update(MachineText)
        .where(
            MachineText.id.in_(ids),
            _claimed_by_me(),
            MachineText.status == MachineTextStatus.RUNNING,
        )
        .values(
            status=MachineTextStatus.FAILED, error=message, finished_at=utcnow(), claimed_by=None
        )
    )
    db.session.commit()


def _write_result(machine_text_id: int, result: GenerationResult) -> bool:
    written = db.session.execute(
        update(MachineText)
        .where(
            MachineText.id == machine_text_id,
            _claimed_by_me(),
            MachineText.status == MachineTextStatus.RUNNING,
        )
        .values(
            status=MachineTextStatus.DONE,
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            generated_tokens=result.generated_tokens,
            truncated=result.truncated,
            progress_tokens=result.generated_tokens,
            finished_at=utcnow(),
            claimed_by=None,
            error=None,
        )
    )
    return written.rowcount == 1


def run_claimed(ids: list[int]) -> None:
    """Generate the machine text of jobs this process has claimed, as one batch."""
    if not ids:
        return
    version = registry.production_version()
    if version is None:
        fail(ids, NO_PRODUCTION_MODEL)
        return
    try:
        generator = registry.generator_for(version)
        settings = registry.settings_for(version)
    except Exception as error:
        log.exception("cannot load %s", version.label)
        fail(ids, f"The model {version.label} could not be loaded: {error}")
        return
    rows = db.session.execute(
        select(MachineText.id, Revision.title, Revision.body)
        .join(Revision, Revision.id == MachineText.revision_id)
        .where(MachineText.id.in_(ids), _claimed_by_me())
    ).all()
    prompts = {row.id: f"{row.title}\n\n{row.body}".strip() for row in rows}
    ids = list(prompts)
    db.session.execute(
        update(MachineText)
        .where(MachineText.id.in_(ids), _claimed_by_me())
        .values(
            model_version_id=version.id,
            settings=settings.to_dict(),
            max_new_tokens=settings.max_new_tokens,
            batch_size=len(ids),
        )
    )
    db.session.commit()
    app = current_app._get_current_object()
    with _Heartbeat(app, ids, worker_id()):
        try:
            results = generator.generate(
                [prompts[i] for i in ids], settings, progress=_ProgressWriter(ids)
            )
        except Exception as error:
            db.session.rollback()
            if len(ids) > 1:
                # One bad document must not fail the others: run each on its own.
                log.warning("batch of %d failed (%s); running each alone", len(ids), error)
                for machine_text_id in ids:
                    _run_alone(generator, settings, machine_text_id, prompts[machine_text_id])
                return
            log.exception("generation failed for machine text %s", ids[0])
            fail(ids, f"The model could not write this machine text: {error}")
            return
    written = [i for i, result in zip(ids, results, strict=True) if _write_result(i, result)]
    db.session.commit()
    if len(written) < len(ids):
        log.warning(
            "results for %s were not written: another worker holds them",
            sorted(set(ids) - set(written)),
        )


def _run_alone(generator, settings, machine_text_id: int, prompt: str) -> None:
    db.session.execute(
        update(MachineText).where(MachineText.id == machine_text_id).values(batch_size=1)
    )
    db.session.commit()
    try:
        [result] = generator.generate(
            [prompt], settings, progress=_ProgressWriter([machine_text_id])
        )
    except Exception as error:
        db.session.rollback()
        log.exception("generation failed for machine text %s", machine_text_id)
        fail([machine_text_id], f"The model could not write this machine text: {error}")
        return
    _write_result(machine_text_id, result)
    db.session.commit()


def run_pending(max_batches: int | None = None) -> int:
    """Claim and run queued jobs batch by batch until none are left; return how many ran."""
    batch_size = current_app.config["GENERATION_BATCH_SIZE"]
    done = batches = 0
    while max_batches is None or batches < max_batches:
        ids = claim([], batch_size)
        if not ids:
            break
        run_claimed(ids)
        done += len(ids)
        batches += 1
    return done
