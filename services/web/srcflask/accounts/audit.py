"""The audit trail in words: each event as the sentence the admins' pages show.

Plain text: the templates escape it like anything else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import AuditEvent, Role

STATUS_VERBS = {
    "approve": "approved {target}'s account",
    "reject": "rejected {target}'s sign-up",
    "suspend": "suspended {target}",
    "reinstate": "reinstated {target}",
}
REVOKE_REASONS = {
    "account.suspend": " when the account was suspended",
    "account.reject": " when the sign-up was rejected",
}


def name_of(label: str | None) -> str:
    """The name in an audit label ("Edna Editor <edna@example.org>" -> "Edna Editor")."""
    if not label:
        return "someone"
    return label.rsplit(" <", 1)[0] if label.endswith(">") else label


def with_article(role: str | None) -> str:
    """A role value from an audit row in a sentence ("an editor"), as Role words it."""
    known = Role._value2member_map_.get(role or "")
    return known.with_article if known is not None else "a user"


def _changes(details: dict[str, Any]) -> str:
    parts = []
    for name, change in details.items():
        if isinstance(change, list | tuple) and len(change) == 2:
            before, after = change
            parts.append(f"{name.replace('_', ' ')} from {_value(before)} to {_value(after)}")
    return "; ".join(parts) if parts else "nothing"


def _value(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    if value is None:
        return "none"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "?"


def _bpc(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "?"


# A decision an editor undid, as the sentence names it.
UNDONE = {"accepted": "accept", "edited": "edit", "kept_part": "keep part", "rejected": "reject"}


# Each action's sentence after its actor: (actor, target, details) -> words.
PHRASES: dict[str, Callable[[str, dict[str, Any]], str]] = {
    "account.signup": lambda t, d: f"signed up as {with_article(d.get('role'))}",
    "account.logout_everywhere": lambda t, d: "logged out everywhere",
    "account.password_change": lambda t, d: "changed their password",
    "api.limits": lambda t, d: f"changed the API generation limits: {_changes(d)}",
    "document.undo_review": lambda t, d: (
        f"undid their decision ({UNDONE.get(str(d.get('decision')), d.get('decision'))}) on the "
        f"machine text of revision {d.get('revision')} of {t}"
        + (f"; revision {d['removed_revision']} was removed" if d.get("removed_revision") else "")
    ),
    "document.write_another": lambda t, d: (
        f"asked for another machine text for revision {d.get('revision')} of {t}, in place "
        "of a rejected one"
    ),
    "experiment.start": lambda t, d: (
        f"started {t}: {d.get('challenger')} against {d.get('champion')} on "
        f"{_percent(d.get('share'))} of documents"
        + (", promoting automatically" if d.get("auto_promote") else "")
    ),
    "experiment.stop": lambda t, d: f"ended {t}: {d.get('because')}",
    "experiment.promote": lambda t, d: f"ended {t}: {d.get('because')}",
    "model.settings": lambda t, d: (
        f"changed {t}'s generation settings for experiment {d.get('experiment')}"
    ),
    "model.alias": lambda t, d: (
        f"pointed the {d.get('alias')} alias at {t}"
        + (f" (it was {d['previous']})" if d.get("previous") else "")
    ),
    "model.evaluate": lambda t, d: (
        f"measured {t} on the quality benchmark ({d.get('prompt_format')} format, "
        f"{d.get('preset')} settings): continues {_percent(d.get('continuation_rate'))} "
        f"of documents, {_bpc(d.get('bits_per_char'))} bits per character"
    ),
    "model.import": lambda t, d: f"imported {t}",
    "model.rollback": lambda t, d: (
        f"rolled the {d.get('alias')} alias back to {t}"
        + (f" (from {d['previous']})" if d.get("previous") else "")
    ),
    "model.train": lambda t, d: (
        f"started fine-tuning {t} into {d.get('name')} on {_value(d.get('reviews'))} "
        f"reviews (training run {d.get('run')})"
    ),
    "model.train_cancel": lambda t, d: f"cancelled training run {d.get('run')} of {t}",
    "model.measure_speed": lambda t, d: (
        f"measured {t} at {d.get('greedy_tokens_per_second')} tokens/s greedy and "
        f"{d.get('beam_tokens_per_second')} tokens/s beam search"
        + (
            ""
            if d.get("kept")
            else f", not kept: {d.get('busy_because') or 'the machine was busy'}"
        )
    ),
    "model.prompt_format": lambda t, d: (
        f"changed {t}'s prompt format from {d.get('before')} to {d.get('after')}"
    ),
    "token.create": lambda t, d: (
        f"created the API token “{d.get('token')}”, valid until {str(d.get('expires_at', ''))[:10]}"
    ),
    "token.revoke": lambda t, d: (
        f"revoked {t}'s API token “{d.get('token')}”" + REVOKE_REASONS.get(str(d.get("reason")), "")
    ),
    "user.role_change": lambda t, d: (
        f"changed {t}'s role from {d.get('from_role')} to {d.get('to_role')}"
    ),
}


def sentence(event: AuditEvent) -> str:
    """What happened, in one sentence."""
    actor = "The command line" if event.actor_label == "command line" else None
    actor = actor or ("Someone" if event.actor_label == "anonymous" else name_of(event.actor_label))
    target = name_of(event.target_label)
    details = event.details or {}
    action = event.action
    if action == "account.signup_repeated" and actor == "Someone":
        return f"Someone tried to sign up again with {target}'s email address."
    if action == "account.signup_repeated":
        return (
            f"{actor} signed up again with {target}'s email address, as "
            f"{with_article(details.get('role'))}; "
            "the new request can only be rejected."
        )
    if action == "auth.login_locked":
        whose = "from one address" if details.get("scope") == "account_and_address" else "in all"
        return (
            f"Logins to {target}'s account were refused for a while: too many wrong "
            f"passwords {whose} ({details.get('limit')})."
        )
    if action == "user.create_admin":
        return f"{target} was made an admin from the command line."
    verb = action.split(".", 1)[1] if action.startswith("user.") else None
    if verb in STATUS_VERBS:
        return f"{actor} {STATUS_VERBS[verb].format(target=target)}."
    phrase = PHRASES.get(action)
    if phrase is not None:
        return f"{actor} {phrase(target, details)}."
    described = ", ".join(f"{key.replace('_', ' ')}: {_value(v)}" for key, v in details.items())
    return (
        f"{actor}: {action}"
        + (f" for {target}" if event.target_label else "")
        + (f" ({described})." if described else ".")
    )
