"""Model loads: every time a process loads a model version, recorded while it runs.

Loading a model (its weights, its tokenizer, the engine around them) takes
seconds, so runners load the production model as they start, and pages say
"loading the model" meanwhile. The rows are what every process shares: a
web process sees a Celery worker's load, and the next load's estimate is
how long the last ones took (before any, the version's size says).
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, insert, select, update

from ..extensions import db
from ..models.mlmodels import ModelLoad, ModelVersion
from ..models.types import utcnow

log = logging.getLogger(__name__)

# Before a version was ever loaded: how fast its files load, for the first estimate.
LOAD_BYTES_PER_SECOND = 50_000_000
# Finished loads kept per version: the estimate is their median.
KEPT_LOADS = 5
# A load not finished after this long (or as many times its estimate) was cut off.
GIVE_UP_SECONDS = 600


@dataclass(frozen=True)
class Loading:
    """A load going on now: how long it has run, and about how long it has left."""

    version_label: str
    elapsed_seconds: float
    seconds_left: int


def _worker() -> str:
    from ..jobs.work import worker_id  # jobs use the registry, not the other way round

    return worker_id()


@contextmanager
def recording(version_id: int) -> Iterator[None]:
    """Record a load of `version_id` by this process while the block loads it.

    Its own transactions, so a caller's session is never committed by it; a
    database that cannot record the load never stops the load.
    """
    started = time.monotonic()
    load_id = None
    try:
        with db.engine.begin() as connection:
            load_id = connection.execute(
                insert(ModelLoad).values(
                    version_id=version_id, worker=_worker(), started_at=utcnow()
                )
            ).inserted_primary_key[0]
    except Exception:
        log.warning("could not record the start of a model load", exc_info=True)
    loaded = False
    try:
        yield
        loaded = True
    finally:
        if load_id is not None:
            _finish(load_id, version_id, time.monotonic() - started if loaded else None)


def _finish(load_id: int, version_id: int, seconds: float | None) -> None:
    """Write how long the load took; forget a failed one (it says nothing about loading)."""
    try:
        with db.engine.begin() as connection:
            if seconds is None:
                connection.execute(delete(ModelLoad).where(ModelLoad.id == load_id))
                return
            connection.execute(
                update(ModelLoad)
                .where(ModelLoad.id == load_id)
                .values(finished_at=utcnow(), seconds=seconds)
            )
            kept = (
                select(ModelLoad.id)
                .where(ModelLoad.version_id == version_id, ModelLoad.seconds.is_not(None))
                .order_by(ModelLoad.finished_at.desc(), ModelLoad.id.desc())
                .limit(KEPT_LOADS)
            )
            connection.execute(
                delete(ModelLoad).where(
                    ModelLoad.version_id == version_id,
                    ModelLoad.seconds.is_not(None),
                    ModelLoad.id.not_in(kept.scalar_subquery()),
                )
            )
    except Exception:
        log.warning("could not record the end of a model load", exc_info=True)


def expected_seconds(version: ModelVersion) -> float:
    """How long loading `version` takes: the median of its last loads, else from its size."""
    took = db.session.scalars(
        select(ModelLoad.seconds).where(
            ModelLoad.version_id == version.id, ModelLoad.seconds.is_not(None)
        )
    ).all()
    if took:
        return statistics.median(took)
    return max(1.0, (version.size_bytes or 0) / LOAD_BYTES_PER_SECOND)


def loading(version: ModelVersion, worker: str | None = None) -> Loading | None:
    """The load of `version` going on now (by `worker`, when given), if there is one."""
    from ..jobs.work import process_alive

    expected = expected_seconds(version)
    give_up = max(GIVE_UP_SECONDS, 5 * expected)
    query = (
        select(ModelLoad)
        .where(
            ModelLoad.version_id == version.id,
            ModelLoad.seconds.is_(None),
            ModelLoad.started_at > utcnow() - timedelta(seconds=give_up),
        )
        .order_by(ModelLoad.started_at)
    )
    if worker is not None:
        query = query.where(ModelLoad.worker == worker)
    for load in db.session.scalars(query):
        if process_alive(load.worker) is False:
            continue  # its process ended mid-load
        elapsed = max(0.0, (utcnow() - load.started_at).total_seconds())
        # Past the estimate it is still loading: say a little longer, never "0 seconds".
        left = max(expected - elapsed, min(expected, 5.0), 1.0)
        return Loading(version.label, elapsed, round(left))
    return None


def preload_production() -> None:
    """Load the production model into this process now, so that its first job need not wait.

    A model that fails to load is left to the first job, which says why on its row.
    """
    from . import service

    try:
        version = service.production_version()
        if version is not None:
            service.generator_for(version)
    except Exception:
        log.exception("could not load the production model ahead of its first job")
    finally:
        db.session.remove()
