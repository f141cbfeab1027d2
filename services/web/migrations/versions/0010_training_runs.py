"""Fine-tuning runs, the lineage of fine-tuned versions, and where an alias was before

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 13:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

STATUSES = ("queued", "running", "done", "failed", "cancelled")


def upgrade():
    op.create_table(
        "training_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("parent_version_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *STATUSES,
                name="training_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("hyperparameters", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("total_steps", sa.Integer(), nullable=True),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("result_version_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by_label", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_training_runs_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_version_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_parent_version_id_model_versions"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["result_version_id"],
            ["model_versions.id"],
            name=op.f("fk_training_runs_result_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_runs")),
    )
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_training_runs_parent_version_id"), ["parent_version_id"], unique=False
        )
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("previous_version_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_model_aliases_previous_version_id_model_versions"),
            "model_versions",
            ["previous_version_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        # Versions imported before have no lineage: an empty record.
        batch_op.add_column(
            sa.Column("lineage", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_model_versions_parent_id_model_versions"),
            "model_versions",
            ["parent_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    bind = op.get_bind()
    runs = bind.scalar(sa.text("SELECT count(*) FROM training_runs"))
    tuned = bind.scalar(sa.text("SELECT count(*) FROM model_versions WHERE parent_id IS NOT NULL"))
    if runs or tuned:
        raise RuntimeError(
            f"{runs} training run(s) and {tuned} fine-tuned version(s) would lose their "
            "record and lineage; the old schema cannot hold them. Delete them first."
        )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_model_versions_parent_id_model_versions"), type_="foreignkey"
        )
        batch_op.drop_column("lineage")
        batch_op.drop_column("parent_id")
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_model_aliases_previous_version_id_model_versions"), type_="foreignkey"
        )
        batch_op.drop_column("previous_version_id")
    with op.batch_alter_table("training_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_training_runs_parent_version_id"))
    op.drop_table("training_runs")
