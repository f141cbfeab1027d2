"""Column types shared by the models."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, update
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timestamp stored in UTC and always read back as an aware UTC datetime.

    SQLite keeps no time zone, so values come back naive there; this type makes
    both databases answer alike.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# The largest id a row can have (a database INTEGER); ids from forms and JSON beyond it
# name no row, and some databases cannot even compare them.
MAX_ID = 2**31 - 1


def lock_row(model, row_id: int) -> None:
    """Hold the write lock on one row until the transaction ends, on Postgres and SQLite.

    A no-op UPDATE locks the row on Postgres and takes SQLite's database-wide
    write lock; either way a second request doing the same waits here until the
    first commits, then reads what it committed.
    """
    from ..extensions import db

    db.session.execute(
        update(model).where(model.id == row_id).values(id=model.id),
        execution_options={"synchronize_session": False},
    )
