"""Account services: sign-up, login bookkeeping and admin decisions, each audited."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from .extensions import db
from .models import LifecycleError, Role, User, UserStatus, record_event
from .models.types import utcnow
from .models.users import find_user_by_email, normalise_email

# Admin decisions on an account's status, by the name used in URLs and the audit log.
STATUS_ACTIONS: dict[str, Callable[[User, User], None]] = {
    "approve": User.approve,
    "reject": User.reject,
    "suspend": User.suspend,
    "reinstate": User.reinstate,
}


def register(
    *,
    name: str,
    email: str,
    organization: str,
    password: str,
    role: str,
    ip_address: str | None,
) -> User | None:
    """Create a pending account, or do nothing if the email is taken.

    Both outcomes hash the password and write one audit row, so neither the
    answer nor its timing tells a visitor whether an email is registered.
    """
    password_hash = generate_password_hash(password)
    email = normalise_email(email)
    existing = find_user_by_email(email)
    if existing is not None:
        record_event(
            "account.signup_repeated",
            actor=None,
            actor_label="anonymous",
            target_user=existing,
            ip_address=ip_address,
        )
        db.session.commit()
        return None
    user = User(
        name=name,
        email=email,
        organization=organization,
        password_hash=password_hash,
        role=Role(role),
    )
    db.session.add(user)
    record_event("account.signup", actor=user, target_user=user, ip_address=ip_address, role=role)
    try:
        db.session.commit()
    except IntegrityError:  # the same email signed up at the same moment
        db.session.rollback()
        return None
    return user


def record_login(user: User) -> None:
    user.last_login_at = utcnow()
    db.session.commit()


def decide(action: str, user: User, admin: User, ip_address: str | None) -> None:
    """Apply an admin's status decision to `user` and audit it; raises LifecycleError."""
    before = user.status
    try:
        STATUS_ACTIONS[action](user, admin)
    except LifecycleError:
        db.session.rollback()
        raise
    record_event(
        f"user.{action}",
        actor=admin,
        target_user=user,
        ip_address=ip_address,
        from_status=before.value,
        to_status=user.status.value,
    )
    db.session.commit()


def change_role(user: User, role: Role, admin: User, ip_address: str | None) -> None:
    """Give `user` another role and audit it; raises LifecycleError."""
    before = user.role
    try:
        user.change_role(role, admin)
    except LifecycleError:
        db.session.rollback()
        raise
    record_event(
        "user.role_change",
        actor=admin,
        target_user=user,
        ip_address=ip_address,
        from_role=before.value,
        to_role=role.value,
    )
    db.session.commit()


def create_admin(*, name: str, email: str, organization: str, password: str) -> User:
    """Create an approved admin from the command line; raises LifecycleError if taken."""
    if find_user_by_email(email) is not None:
        raise LifecycleError(f"An account with the email {normalise_email(email)} exists.")
    user = User(
        name=name,
        email=normalise_email(email),
        organization=organization,
        role=Role.ADMIN,
        status=UserStatus.APPROVED,
        approved_at=utcnow(),
    )
    user.set_password(password)
    db.session.add(user)
    record_event("user.create_admin", actor=None, target_user=user)
    db.session.commit()
    return user
