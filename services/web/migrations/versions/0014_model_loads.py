"""Model loads: which process loads which model version, and how long loading took

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 16:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "model_loads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("worker", sa.String(length=120), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_loads_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_loads")),
    )
    with op.batch_alter_table("model_loads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_loads_version_id"), ["version_id"], unique=False)


def downgrade():
    # Only the record of past loads goes: each process records its load again as it starts.
    with op.batch_alter_table("model_loads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_loads_version_id"))
    op.drop_table("model_loads")
