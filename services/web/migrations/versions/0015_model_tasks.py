"""Model tasks: trying a prompt, measuring speed and fetching a catalog model in the background

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 17:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def enum(*values: str, name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def upgrade():
    op.create_table(
        "model_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", enum("try", "speed", "fetch", name="model_task_kind"), nullable=False),
        sa.Column(
            "status",
            enum("queued", "running", "done", "failed", name="model_task_status"),
            nullable=False,
        ),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("catalog_name", sa.String(length=100), nullable=True),
        sa.Column("active_slot", sa.String(length=120), nullable=True),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("stage", sa.String(length=300), nullable=False),
        sa.Column("done", sa.Integer(), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(length=120), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_by_label", sa.String(length=300), nullable=False),
        sa.Column("ip_address", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
            name=op.f("fk_model_tasks_created_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_tasks_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_tasks")),
        sa.UniqueConstraint("active_slot", name=op.f("uq_model_tasks_active_slot")),
    )
    with op.batch_alter_table("model_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_tasks_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_tasks_version_id"), ["version_id"], unique=False)


def downgrade():
    unfinished = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM model_tasks WHERE status IN ('queued', 'running')")
    )
    if unfinished:
        raise RuntimeError(
            f"{unfinished} model task(s) are queued or running and would be lost; the old "
            "schema cannot hold them. Wait for them to finish first."
        )
    # Only the record of past actions goes: their outcomes live on the versions.
    with op.batch_alter_table("model_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_tasks_version_id"))
        batch_op.drop_index(batch_op.f("ix_model_tasks_created_at"))
    op.drop_table("model_tasks")
