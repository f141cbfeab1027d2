"""Programs' access: personal API tokens, generation jobs and the limits admins set."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..extensions import db
from .jobs import JobMixin
from .types import UTCDateTime, utcnow
from .users import User

TOKEN_PREFIX = "sfk_"  # noqa: S105 (a marker, not a secret)
# Active (unrevoked, unexpired) tokens one person may hold at once.
MAX_ACTIVE_TOKENS = 20


def hash_token(secret: str) -> str:
    """Tokens are long random strings, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiToken(db.Model):
    """A personal API token: it acts as its owner, with the owner's current role and status."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, shown in lists so people can tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()

    @classmethod
    def issue(cls, user: User, name: str, days: int) -> tuple[ApiToken, str]:
        """Make a token for `user`; return it with its secret, which is never stored."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls(
            user=user,
            name=name,
            token_hash=hash_token(secret),
            prefix=secret[:12],
            expires_at=utcnow() + timedelta(days=days),
        )
        return token, secret

    @classmethod
    def active_count(cls, user: User) -> int:
        return db.session.scalar(
            select(func.count())
            .select_from(cls)
            .where(cls.user_id == user.id, cls.revoked_at.is_(None), cls.expires_at > utcnow())
        )

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= utcnow():
            return "expired"
        return "active"

    @property
    def usable(self) -> bool:
        return self.state == "active"


class GenerationJob(JobMixin, db.Model):
    """A prompt sent to POST /api/v1/generate and what the model wrote for it."""

    __tablename__ = "generation_jobs"
    STATUS_CONSTRAINT = "generation_job_status"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    prompt: Mapped[str] = mapped_column(Text)

    user: Mapped[User] = relationship()


class ApiLimits(db.Model):
    """What POST /api/v1/generate allows; one row, edited by admins on /admin/api."""

    __tablename__ = "api_limits"

    id: Mapped[int] = mapped_column(primary_key=True)
    max_prompt_characters: Mapped[int] = mapped_column(Integer, default=2000)
    max_new_tokens: Mapped[int] = mapped_column(Integer, default=128)
    max_beams: Mapped[int] = mapped_column(Integer, default=5)
    allow_sampling: Mapped[bool] = mapped_column(Boolean, default=True)
    requests_per_minute: Mapped[int] = mapped_column(Integer, default=10)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    @classmethod
    def current(cls) -> ApiLimits:
        """The limits in force (the defaults until an admin changes them)."""
        limits = db.session.get(cls, 1)
        if limits is None:
            limits = cls(
                id=1,
                max_prompt_characters=2000,
                max_new_tokens=128,
                max_beams=5,
                allow_sampling=True,
                requests_per_minute=10,
            )
        return limits
