"""A revision may have several machine texts: another is written in place of a rejected one

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 15:40:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    # Every machine text so far is its revision's first, and none was replaced.
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_constraint("uq_machine_texts_revision_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_machine_texts_revision_number", ["revision_id", "number"]
        )


def downgrade():
    texts = sa.table("machine_texts", sa.column("replaced_at", sa.DateTime(timezone=True)))
    replaced = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(texts).where(texts.c.replaced_at.is_not(None))
    )
    if replaced:
        raise RuntimeError(
            f"{replaced} machine text(s) were replaced by another for the same revision; the "
            "old schema holds one per revision and cannot keep them or their reviews."
        )
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_machine_texts_revision_number", type_="unique")
        batch_op.create_unique_constraint("uq_machine_texts_revision_id", ["revision_id"])
        batch_op.drop_column("replaced_at")
        batch_op.drop_column("number")
