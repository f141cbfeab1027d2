"""People who use srcflask, their roles and the admin approval lifecycle."""

from __future__ import annotations

import enum
import functools
import hashlib
import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    false,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from .types import UTCDateTime, utcnow


class Role(enum.StrEnum):
    SPONSOR = "sponsor"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return self.value.capitalize()

    @property
    def with_article(self) -> str:
        """The role in a sentence: "an editor", "a sponsor", "an admin"."""
        return f"{'an' if self.value[0] in 'aeiou' else 'a'} {self.value}"


class UserStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"

    @property
    def label(self) -> str:
        return self.value.capitalize()


def enum_column(enum_class: type[enum.Enum], name: str) -> Enum:
    """Store an enum as its string value, with a CHECK constraint on every database."""
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


class LifecycleError(ValueError):
    """An admin action that the user's current state does not allow."""


def normalise_email(email: str) -> str:
    """Return the form of an email address that accounts are compared by."""
    return email.strip().lower()


@functools.cache
def dummy_hash() -> str:
    """A hash of nothing, made as every stored password's is (werkzeug's default method).

    Checked against when there is no account or repeated sign-up to check, so that
    every failed login costs the same hash work. Made as the app starts, so that not
    even a process's first login pays for making it.
    """
    return generate_password_hash(secrets.token_urlsafe(16))


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # Unique among accounts; a repeated sign-up (see `duplicate_of`) shares its address.
    email: Mapped[str] = mapped_column(String(254))
    organization: Mapped[str] = mapped_column(String(120), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(enum_column(Role, "user_role"))
    status: Mapped[UserStatus] = mapped_column(
        enum_column(UserStatus, "user_status"), default=UserStatus.PENDING, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Part of the login cookie: bumping it ends every existing session of the user.
    session_version: Mapped[int] = mapped_column(Integer, default=1)

    # A sign-up with an email that already had an account becomes a request of its own,
    # pending like any other, which an admin can only reject: the visitor is answered
    # exactly as a new sign-up would be, so sign-up never tells whether an email is known.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )

    approved_by: Mapped[User | None] = relationship(remote_side=[id], foreign_keys=[approved_by_id])
    duplicate_of: Mapped[User | None] = relationship(
        remote_side=[id], foreign_keys=[duplicate_of_id]
    )

    __table_args__ = (
        Index(
            "uq_users_email",
            "email",
            unique=True,
            sqlite_where=duplicate_of_id.is_(None),
            postgresql_where=duplicate_of_id.is_(None),
        ),
    )

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email} {self.role} {self.status}>"

    # -- Flask-Login -------------------------------------------------------------
    # The key of the login session this object was loaded for (set at login and by the
    # user loader); it goes into the cookie so that logout can end just that session.
    session_key = None

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}:{self.session_key or ''}"

    @property
    def is_active(self) -> bool:
        # Every account may log in; what it can reach depends on `is_approved`.
        return True

    @property
    def is_approved(self) -> bool:
        return self.status is UserStatus.APPROVED

    @property
    def is_admin(self) -> bool:
        return self.is_approved and self.role is Role.ADMIN

    # -- passwords ---------------------------------------------------------------
    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def end_sessions(self, keep: str | None = None) -> None:
        """End every login session of this user, except the one whose key is `keep`."""
        query = delete(LoginSession).where(LoginSession.user_id == self.id)
        if keep:
            query = query.where(LoginSession.key_hash != hash_session_key(keep))
        else:
            # Also part of every cookie: a bump outlives any row that was missed.
            self.session_version = (self.session_version or 1) + 1
        db.session.execute(query)

    # -- approval lifecycle ------------------------------------------------------
    def approve(self, admin: User) -> None:
        """Let a pending or rejected account in."""
        self._require_status({UserStatus.PENDING, UserStatus.REJECTED}, "approve")
        if self.duplicate_of_id is not None:
            raise LifecycleError(
                f"Cannot approve {self.name}: {self.email} already belongs to another "
                "account. Reject this sign-up."
            )
        self.status = UserStatus.APPROVED
        self.approved_at = utcnow()
        self.approved_by = admin

    def reject(self, admin: User) -> None:
        """Refuse a pending account."""
        self._require_status({UserStatus.PENDING}, "reject")
        self._guard_admin_removal(admin, "reject")
        self.status = UserStatus.REJECTED
        self.end_sessions()

    def suspend(self, admin: User) -> None:
        """Shut an approved account out until it is reinstated."""
        self._require_status({UserStatus.APPROVED}, "suspend")
        self._guard_admin_removal(admin, "suspend")
        self.status = UserStatus.SUSPENDED
        self.end_sessions()

    def reinstate(self, admin: User) -> None:
        """Let a suspended account back in."""
        self._require_status({UserStatus.SUSPENDED}, "reinstate")
        self.status = UserStatus.APPROVED
        if self.approved_at is None:
            self.approved_at = utcnow()
            self.approved_by = admin

    def change_role(self, role: Role, admin: User) -> None:
        """Give the account another role."""
        if role is self.role:
            raise LifecycleError(f"{self.name} is already {role.with_article}.")
        if self.duplicate_of_id is not None:
            raise LifecycleError(
                f"{self.name}'s sign-up repeats another account's email; it can only be rejected."
            )
        if self.role is Role.ADMIN:
            self._guard_admin_removal(admin, "demote")
        self.role = role

    def _require_status(self, allowed: set[UserStatus], action: str) -> None:
        if self.status not in allowed:
            raise LifecycleError(
                f"Cannot {action} {self.name}: the account is {self.status.value}."
            )

    def _guard_admin_removal(self, admin: User | None, action: str) -> None:
        if admin is not None and admin.id == self.id:
            raise LifecycleError(f"You cannot {action} your own account.")
        removes_an_admin = self.role is Role.ADMIN and self.status is UserStatus.APPROVED
        if removes_an_admin and active_admin_count(lock=True) <= 1:
            raise LifecycleError(f"Cannot {action} {self.name}: they are the last active admin.")


def active_admin_count(lock: bool = False) -> int:
    """Count approved admins; with `lock`, no one else can change them until this commits.

    Two admins removing each other at once must not leave the system with none,
    so the count and the change that follows must be one atomic step. Postgres
    locks the admins' rows (SELECT ... FOR UPDATE). SQLite has no row locks and
    ignores FOR UPDATE: a write statement takes its database-wide write lock
    instead, and the count is read after it, inside the same transaction, so a
    second admin waits here until the first change is committed, then counts again.
    """
    query = select(User.id).where(User.role == Role.ADMIN, User.status == UserStatus.APPROVED)
    if lock:
        if db.session.get_bind().dialect.name == "sqlite":
            db.session.execute(update(User).where(false()).values(id=User.id))
        query = query.with_for_update()
    return len(db.session.scalars(query).all())


# The repeated sign-ups of one email that a login tries after the account: the newest.
# Every failed login checks exactly 1 + this many hashes, real or dummy, so each more
# would add one hash's time to every failed login.
REPEATED_SIGNUPS_TRIED = 1


def find_user_by_email(email: str) -> User | None:
    """The account with this email (never a repeated sign-up of it)."""
    return db.session.scalar(
        select(User).where(User.email == normalise_email(email), User.duplicate_of_id.is_(None))
    )


def check_password_in_constant_time(user: User | None, password: str) -> bool:
    """Check `password` against `user`, paying for one hash check even when there is none."""
    if user is None:
        check_password_hash(dummy_hash(), password)
        return False
    return user.check_password(password)


def authenticate(email: str, password: str) -> User | None:
    """Return the user with this email and password, spending the same time either way.

    The account comes first. A repeated sign-up of its email logs in with the
    password it was made with, as a new account would, and can reach no more than
    its own status page: it is pending or rejected, never approved. A failed login
    checks 1 + REPEATED_SIGNUPS_TRIED hashes whether or not the email is known and
    however many repeated sign-ups it has, so its time tells nothing.
    """
    user = find_user_by_email(email)
    if check_password_in_constant_time(user, password):
        return user
    # The same query either way (no account has id 0), then dummies for the missing.
    repeats: list[User | None] = list(
        db.session.scalars(
            select(User)
            .where(
                User.duplicate_of_id == (user.id if user is not None else 0),
                User.status != UserStatus.APPROVED,
            )
            .order_by(User.id.desc())
            .limit(REPEATED_SIGNUPS_TRIED)
        )
    )
    repeats += [None] * (REPEATED_SIGNUPS_TRIED - len(repeats))
    matches = [check_password_in_constant_time(repeat, password) for repeat in repeats]
    return next((repeat for repeat, ok in zip(repeats, matches, strict=True) if ok), None)


def user_search(status: UserStatus | None = None, text: str = ""):
    """Accounts newest first, in one status if given, whose name or email contains `text`."""
    from ..pagination import like_pattern

    query = select(User).order_by(User.created_at.desc(), User.id.desc())
    if status is not None:
        query = query.where(User.status == status)
    if text:
        pattern = like_pattern(text.lower())
        query = query.where(
            or_(User.name.ilike(pattern, escape="\\"), User.email.ilike(pattern, escape="\\"))
        )
    return query


def status_counts() -> dict[UserStatus, int]:
    """Return how many accounts are in each status, every status present."""
    rows = db.session.execute(select(User.status, func.count()).group_by(User.status))
    counts = {status: 0 for status in UserStatus}
    counts.update({status: count for status, count in rows})
    return counts


def hash_session_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LoginSession(db.Model):
    """One logged-in browser. The cookie holds a random key; only its hash is stored.

    Deleting the row ends that browser's session, whatever copies of the cookie exist.
    """

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str] = mapped_column(String(200), default="")

    user: Mapped[User] = relationship()

    BROWSERS = (
        ("Edg/", "Edge"),
        ("Firefox/", "Firefox"),
        ("Chrom", "Chrome"),
        ("Safari/", "Safari"),
    )
    SYSTEMS = (
        ("Android", "Android"),
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    )

    @property
    def browser(self) -> str:
        """A short name for the session's browser, such as "Firefox on Windows"."""
        agent = self.user_agent or ""
        name = next((label for mark, label in self.BROWSERS if mark in agent), None)
        system = next((label for mark, label in self.SYSTEMS if mark in agent), None)
        if name and system:
            return f"{name} on {system}"
        return name or system or (agent[:60] if agent else "Unknown browser")

    @classmethod
    def start(cls, user: User, ip_address: str | None, user_agent: str) -> tuple[LoginSession, str]:
        """Open a session for `user`; return it with the key for the cookie (never stored)."""
        key = secrets.token_urlsafe(32)
        row = cls(
            user=user,
            key_hash=hash_session_key(key),
            ip_address=ip_address,
            user_agent=user_agent[:200],
        )
        return row, key
