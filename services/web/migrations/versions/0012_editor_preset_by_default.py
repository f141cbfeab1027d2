"""Versions on the old default settings move to the editor preset

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 15:00:00

The default preset became `editor` (docs/machine-text.md): the same beam search,
ending at the paragraph's end, with no markup or contact details the document
does not use. A version whose settings are exactly the old default's (nobody
chose them) moves to the new default; settings someone chose stay as they are.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OLD_DEFAULT = {
    "strategy": "beam",
    "max_new_tokens": 100,
    "num_beams": 5,
    "no_repeat_ngram_size": 4,
    "early_stopping": True,
    "temperature": 1.0,
    "top_p": 1.0,
    "top_k": 50,
    "seed": None,
    "repetition_penalty": 1.0,
}
NEW_FIELDS = {"min_p": 0.0, "typical_p": 1.0, "best_of": 1}
EDITOR = {
    **OLD_DEFAULT,
    **NEW_FIELDS,
    "max_new_tokens": 120,
    "stop_at": "paragraph",
    "ban_markup": True,
}
ORIGINAL = {**OLD_DEFAULT, **NEW_FIELDS, "stop_at": "length", "ban_markup": False}


def move(source: list[dict], target: dict) -> None:
    connection = op.get_bind()
    versions = sa.table(
        "model_versions", sa.column("id"), sa.column("generation_settings", sa.JSON)
    )
    rows = connection.execute(sa.select(versions.c.id, versions.c.generation_settings)).all()
    for version_id, settings in rows:
        if isinstance(settings, str):
            settings = json.loads(settings)
        if settings in source:
            connection.execute(
                versions.update()
                .where(versions.c.id == version_id)
                .values(generation_settings=target)
            )


def upgrade():
    move([OLD_DEFAULT, ORIGINAL], EDITOR)


def downgrade():
    move([EDITOR], OLD_DEFAULT)
