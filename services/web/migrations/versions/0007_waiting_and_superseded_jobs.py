"""Jobs can wait behind their owner's earlier ones, and be superseded by a newer save

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

OLD = ("queued", "running", "done", "failed")
NEW = ("waiting", *OLD, "superseded")
TABLES = {"machine_texts": "machine_text_status", "generation_jobs": "generation_job_status"}


def status_type(values, name):
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=16)


def change_statuses(old, new):
    for table, name in TABLES.items():
        # The CHECK constraint goes with the old type and comes back with the new one
        # (SQLite rebuilds the table; Postgres alters it in place).
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "status",
                existing_type=status_type(old, name),
                type_=status_type(new, name),
                existing_nullable=False,
            )


def upgrade():
    change_statuses(OLD, NEW)


def downgrade():
    superseded = {}
    for table in TABLES:
        jobs = sa.table(table, sa.column("status", sa.String))
        superseded[table] = op.get_bind().scalar(
            sa.select(sa.func.count()).select_from(jobs).where(jobs.c.status == "superseded")
        )
    if any(superseded.values()):
        counts = ", ".join(f"{n} in {table}" for table, n in superseded.items() if n)
        raise RuntimeError(
            f"Jobs superseded by a newer save ({counts}) would read as failed; the old "
            "schema cannot tell them apart. Delete them first."
        )
    # A waiting job is a queued one that the old schema runs in turn: nothing is lost.
    for table in TABLES:
        jobs = sa.table(table, sa.column("status", sa.String))
        op.execute(jobs.update().where(jobs.c.status == "waiting").values(status="queued"))
    change_statuses(NEW, OLD)
