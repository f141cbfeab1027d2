"""Editors keep part of a machine text or choose an alternative; reviews keep the words kept

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 14:00:00

"""

import difflib
import re

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BATCH = 500
DECISIONS = ("accepted", "edited", "rejected")
ORIGINS = ("save", "accepted", "edited")


def enum_type(values, name):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def kept_word_share(machine, final):
    # As srcflask.documents.diff.kept_word_share on the day of this migration.
    words = re.findall(r"\S+", machine or "")
    if not words:
        return None
    finals = re.findall(r"\S+", final or "")
    matcher = difflib.SequenceMatcher(None, words, finals, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(words)


def upgrade():
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("alternatives", sa.JSON(), nullable=True))
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kept_share", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("chosen", sa.Integer(), nullable=True))
        batch_op.alter_column(
            "decision",
            existing_type=enum_type(DECISIONS, "review_decision"),
            type_=enum_type((*DECISIONS, "kept_part"), "review_decision"),
            existing_nullable=False,
        )
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.alter_column(
            "origin",
            existing_type=enum_type(ORIGINS, "revision_origin"),
            type_=enum_type((*ORIGINS, "kept_part"), "revision_origin"),
            existing_nullable=False,
        )
    # Reviews written before: accepted ones kept every word, rejected ones none, edited
    # ones are measured.
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE reviews SET kept_share = 1 WHERE decision = 'accepted'"))
    connection.execute(sa.text("UPDATE reviews SET kept_share = 0 WHERE decision = 'rejected'"))
    last = 0
    while True:
        rows = connection.execute(
            sa.text(
                "SELECT reviews.id, machine_texts.text, reviews.text FROM reviews"
                " JOIN machine_texts ON machine_texts.id = reviews.machine_text_id"
                " WHERE reviews.decision = 'edited' AND reviews.id > :last"
                " ORDER BY reviews.id LIMIT :batch"
            ),
            {"last": last, "batch": BATCH},
        ).all()
        if not rows:
            break
        for review_id, machine, final in rows:
            connection.execute(
                sa.text("UPDATE reviews SET kept_share = :share WHERE id = :id"),
                {"share": kept_word_share(machine, final), "id": review_id},
            )
        last = rows[-1][0]


def downgrade():
    bind = op.get_bind()
    alternatives = bind.scalar(
        sa.text("SELECT count(*) FROM machine_texts WHERE alternatives IS NOT NULL")
    )
    chosen = bind.scalar(sa.text("SELECT count(*) FROM reviews WHERE chosen IS NOT NULL"))
    if alternatives or chosen:
        raise RuntimeError(
            f"{alternatives} machine text(s) with alternatives and {chosen} review(s) that "
            "chose one would lose them; the old schema cannot hold them. Delete them first."
        )
    # A kept part reads, as before, as an edit whose text is the part kept; the words kept
    # are measured again on the way back up.
    op.execute("UPDATE reviews SET decision = 'edited' WHERE decision = 'kept_part'")
    op.execute("UPDATE revisions SET origin = 'edited' WHERE origin = 'kept_part'")
    with op.batch_alter_table("revisions", schema=None) as batch_op:
        batch_op.alter_column(
            "origin",
            existing_type=enum_type((*ORIGINS, "kept_part"), "revision_origin"),
            type_=enum_type(ORIGINS, "revision_origin"),
            existing_nullable=False,
        )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.alter_column(
            "decision",
            existing_type=enum_type((*DECISIONS, "kept_part"), "review_decision"),
            type_=enum_type(DECISIONS, "review_decision"),
            existing_nullable=False,
        )
        batch_op.drop_column("chosen")
        batch_op.drop_column("kept_share")
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.drop_column("alternatives")
