"""A sign-up with an email that already has an account becomes a pending request of its own

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("duplicate_of_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_users_duplicate_of_id_users"),
            "users",
            ["duplicate_of_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch_op.create_index(batch_op.f("ix_users_duplicate_of_id"), ["duplicate_of_id"])
        batch_op.drop_constraint("uq_users_email", type_="unique")
    # The email stays unique among accounts; repeated sign-ups share it.
    op.create_index(
        "uq_users_email",
        "users",
        ["email"],
        unique=True,
        sqlite_where=sa.text("duplicate_of_id IS NULL"),
        postgresql_where=sa.text("duplicate_of_id IS NULL"),
    )


def downgrade():
    users = sa.table("users", sa.column("duplicate_of_id", sa.Integer))
    repeated = op.get_bind().scalar(
        sa.select(sa.func.count()).select_from(users).where(users.c.duplicate_of_id.is_not(None))
    )
    if repeated:
        raise RuntimeError(
            f"{repeated} repeated sign-up(s) share an email with an account; the old schema "
            "cannot hold them. Reject and delete them first."
        )
    op.drop_index("uq_users_email", table_name="users")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_unique_constraint("uq_users_email", ["email"])
        batch_op.drop_index(batch_op.f("ix_users_duplicate_of_id"))
        batch_op.drop_constraint(batch_op.f("fk_users_duplicate_of_id_users"), type_="foreignkey")
        batch_op.drop_column("duplicate_of_id")
