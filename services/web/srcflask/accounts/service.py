"""Account services: sign-up, login bookkeeping and admin decisions, each audited."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from ..extensions import db
from ..models import ApiToken, LifecycleError, LoginSession, Role, User, UserStatus, record_event
from ..models.api import MAX_ACTIVE_TOKENS
from ..models.types import utcnow
from ..models.users import find_user_by_email, hash_session_key, normalise_email

# Decisions that shut an account out also revoke its API tokens.
ACTIONS_THAT_REVOKE_TOKENS = {"reject", "suspend"}

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
) -> User:
    """Create a pending account and return it.

    If the email already belongs to an account, the new one is a repeated sign-up
    of it (`User.duplicate_of`): pending like any other, which an admin can only
    reject. Both paths hash the password, write one audit row and give the visitor
    a pending account of their own, so neither the answer, nor its timing, nor what
    the visitor can do next tells whether an email is registered.
    """
    fields = dict(
        name=name,
        email=normalise_email(email),
        organization=organization,
        password_hash=generate_password_hash(password),
        role=Role(role),
    )
    try:
        return _add_signup(fields, ip_address)
    except IntegrityError:  # the same email signed up at the same moment: this one repeats it
        db.session.rollback()
        return _add_signup(fields, ip_address)


def _add_signup(fields: dict, ip_address: str | None) -> User:
    existing = find_user_by_email(fields["email"])
    user = User(**fields, duplicate_of=existing)
    db.session.add(user)
    role = fields["role"].value
    if existing is None:
        record_event(
            "account.signup", actor=user, target_user=user, ip_address=ip_address, role=role
        )
    else:
        record_event(
            "account.signup_repeated",
            actor=user,
            target_user=existing,
            ip_address=ip_address,
            role=role,
        )
    db.session.commit()
    return user


def start_session(user: User, ip_address: str | None, user_agent: str) -> str:
    """Record a login: open a login session for `user` and return its key for the cookie.

    The user's sessions that have expired are deleted on the way.
    """
    idle = current_app.config["PERMANENT_SESSION_LIFETIME"]
    db.session.execute(
        delete(LoginSession).where(
            LoginSession.user_id == user.id, LoginSession.last_seen_at < utcnow() - idle
        )
    )
    row, key = LoginSession.start(user, ip_address, user_agent)
    db.session.add(row)
    user.last_login_at = utcnow()
    db.session.commit()
    user.session_key = key
    return key


def end_session(user: User) -> None:
    """Log out: end the login session this request came with (copies of its cookie too)."""
    if user.session_key:
        db.session.execute(
            delete(LoginSession).where(LoginSession.key_hash == hash_session_key(user.session_key))
        )
        db.session.commit()


def sessions_of(user: User) -> list[LoginSession]:
    return db.session.scalars(
        select(LoginSession)
        .where(LoginSession.user_id == user.id)
        .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
    ).all()


def end_every_session(user: User, ip_address: str | None) -> None:
    """ "Log out everywhere": end every login session of `user`, this one included."""
    user.end_sessions()
    record_event("account.logout_everywhere", actor=user, target_user=user, ip_address=ip_address)
    db.session.commit()


def change_password(user: User, current: str, new: str, ip_address: str | None) -> None:
    """Set a new password if `current` is right; every other session of the user ends.

    Raises LifecycleError when the current password is wrong.
    """
    if not user.check_password(current):
        raise LifecycleError("Your current password is wrong.")
    user.set_password(new)
    user.end_sessions(keep=user.session_key)
    record_event("account.password_change", actor=user, target_user=user, ip_address=ip_address)
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
    if action in ACTIONS_THAT_REVOKE_TOKENS:
        revoke_tokens(user, admin, ip_address, reason=f"account.{action}")
    db.session.commit()


def issue_token(user: User, name: str, days: int, ip_address: str | None) -> str:
    """Make an API token for `user`, audited; return its secret (shown once, never stored).

    Raises LifecycleError when the user already holds MAX_ACTIVE_TOKENS active tokens.
    """
    if ApiToken.active_count(user) >= MAX_ACTIVE_TOKENS:
        raise LifecycleError(
            f"You have {MAX_ACTIVE_TOKENS} active tokens, the most one person may hold. "
            "Revoke one you no longer use, then create this one."
        )
    token, secret = ApiToken.issue(user, name, days)
    db.session.add(token)
    record_event(
        "token.create",
        actor=user,
        target_user=user,
        ip_address=ip_address,
        token=token.name,
        prefix=token.prefix,
        expires_at=token.expires_at.isoformat(timespec="seconds"),
    )
    db.session.commit()
    return secret


def tokens_of(user: User) -> list[ApiToken]:
    """Every token `user` made, newest first (revoked and expired ones too)."""
    return db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id)
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ).all()


def own_token(user: User, token_id: int) -> ApiToken | None:
    """`user`'s token `token_id`; None when there is none or it is someone else's."""
    token = db.session.get(ApiToken, token_id)
    return token if token is not None and token.user_id == user.id else None


def revoke_own_token(token: ApiToken, ip_address: str | None) -> bool:
    """The owner revokes their token, audited; False if it was already revoked."""
    if not revoke_token(token, token.user, ip_address):
        return False
    db.session.commit()
    return True


def revoke_token(token: ApiToken, actor: User, ip_address: str | None, **details) -> bool:
    """Revoke a token that still works, audited (not committed); False if it was revoked."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    record_event(
        "token.revoke",
        actor=actor,
        target_user=token.user,
        ip_address=ip_address,
        token=token.name,
        prefix=token.prefix,
        **details,
    )
    return True


def revoke_tokens(user: User, actor: User, ip_address: str | None, reason: str) -> None:
    """Revoke every token of `user` that still works, one audit row each (not committed).

    Reinstating an account does not bring its tokens back: the user makes new ones.
    """
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ).all()
    for token in tokens:
        revoke_token(token, actor, ip_address, reason=reason)


class ConfirmationNeeded(LifecycleError):
    """Granting admin needs the admin's explicit confirmation, which was not given."""


def change_role(
    user: User, role: Role, admin: User, ip_address: str | None, *, confirmed: bool = False
) -> None:
    """Give `user` another role and audit it; raises LifecycleError.

    Granting admin must be `confirmed` (ConfirmationNeeded otherwise).
    """
    if role is Role.ADMIN and user.role is not Role.ADMIN and not confirmed:
        raise ConfirmationNeeded(f"Granting admin to {user.name} needs confirmation.")
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


def record_lockout(email: str, ip_address: str | None, scope: str, limit: str) -> None:
    """Audit that login attempts for `email` are refused for a while (`scope`: whose attempts)."""
    user = find_user_by_email(email) if email else None
    record_event(
        "auth.login_locked",
        actor=None,
        actor_label="anonymous",
        target_user=user,
        target_label=None if user else email[:254],
        ip_address=ip_address,
        scope=scope,
        limit=limit,
    )
    db.session.commit()


DEMO_ACCOUNTS = [
    ("Demo Sponsor", "sponsor@demo.srcflask.test", Role.SPONSOR),
    ("Demo Editor", "editor@demo.srcflask.test", Role.EDITOR),
    ("Demo Admin", "admin@demo.srcflask.test", Role.ADMIN),
]


def seed_demo_accounts(reset: bool) -> dict[str, tuple[Role, str]]:
    """Create the approved demo accounts that are missing (all of them with `reset`).

    Each gets a new random password, and any session it had ends. Returns
    {email: (role, password)} for the accounts given a password now.
    """
    passwords = {}
    for name, email, role in DEMO_ACCOUNTS:
        user = find_user_by_email(email)
        if user is not None and not reset:
            continue
        if user is None:
            user = User(
                name=name,
                email=email,
                organization="srcflask demo",
                role=role,
                status=UserStatus.APPROVED,
                approved_at=utcnow(),
            )
            db.session.add(user)
        password = secrets.token_urlsafe(12)
        user.set_password(password)
        user.end_sessions()
        passwords[email] = (role, password)
    db.session.commit()
    return passwords
