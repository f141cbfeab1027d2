"""The limits of POST /api/v1/generate that admins set: the one place they change."""

from __future__ import annotations

from typing import Any

from ..extensions import db
from ..models import User, record_event
from ..models.api import ApiLimits
from ..models.types import utcnow

FIELDS = (
    "max_prompt_characters",
    "max_new_tokens",
    "max_beams",
    "allow_sampling",
    "requests_per_minute",
)


def update_limits(values: dict[str, Any], admin: User, ip_address: str | None) -> dict:
    """Save new limits, audited with what changed; return the changes as {name: [old, new]}."""
    limits = ApiLimits.current()
    before = {name: getattr(limits, name) for name in FIELDS}
    for name in FIELDS:
        if name in values:
            setattr(limits, name, values[name])
    limits.updated_at, limits.updated_by_id = utcnow(), admin.id
    db.session.merge(limits)
    changed = {
        name: [before[name], getattr(limits, name)]
        for name in FIELDS
        if before[name] != getattr(limits, name)
    }
    record_event(
        "api.limits",
        actor=admin,
        target_label="API generation limits",
        ip_address=ip_address,
        **changed,
    )
    db.session.commit()
    return changed
