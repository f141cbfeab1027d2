"""Experiments: champion and challenger on live documents, and each machine text's arm

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 23:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "running",
                "stopped",
                "promoted",
                name="experiment_status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("champion_version_id", sa.Integer(), nullable=True),
        sa.Column("champion_settings", sa.JSON(), nullable=False),
        sa.Column("champion_preset", sa.String(length=50), nullable=True),
        sa.Column("challenger_version_id", sa.Integer(), nullable=True),
        sa.Column("challenger_settings", sa.JSON(), nullable=False),
        sa.Column("challenger_preset", sa.String(length=50), nullable=True),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column("auto_promote", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(length=20), nullable=True),
        sa.Column("ended_because", sa.Text(), nullable=True),
        sa.Column("started_by_id", sa.Integer(), nullable=True),
        sa.Column("started_by_label", sa.String(length=300), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_by_label", sa.String(length=300), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["champion_version_id"],
            ["model_versions.id"],
            name=op.f("fk_experiments_champion_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["challenger_version_id"],
            ["model_versions.id"],
            name=op.f("fk_experiments_challenger_version_id_model_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["started_by_id"],
            ["users.id"],
            name=op.f("fk_experiments_started_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiments_champion_version_id"), ["champion_version_id"]
        )
        batch_op.create_index(
            batch_op.f("ix_experiments_challenger_version_id"), ["challenger_version_id"]
        )
        batch_op.create_index(
            "uq_experiments_one_running",
            ["status"],
            unique=True,
            sqlite_where=sa.text("status = 'running'"),
            postgresql_where=sa.text("status = 'running'"),
        )
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("experiment_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("arm", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("preset", sa.String(length=50), nullable=True))
        batch_op.create_index(batch_op.f("ix_machine_texts_experiment_id"), ["experiment_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_machine_texts_experiment_id_experiments"),
            "experiments",
            ["experiment_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade():
    experiments = op.get_bind().scalar(sa.text("SELECT count(*) FROM experiments"))
    if experiments:
        raise RuntimeError(
            f"{experiments} experiment(s) and the arms of their machine texts would be lost; "
            "the old schema cannot hold them. Export what you need and delete the "
            "experiments table's rows to go back."
        )
    with op.batch_alter_table("machine_texts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_machine_texts_experiment_id_experiments"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_machine_texts_experiment_id"))
        batch_op.drop_column("preset")
        batch_op.drop_column("arm")
        batch_op.drop_column("experiment_id")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_index("uq_experiments_one_running")
        batch_op.drop_index(batch_op.f("ix_experiments_challenger_version_id"))
        batch_op.drop_index(batch_op.f("ix_experiments_champion_version_id"))
    op.drop_table("experiments")
