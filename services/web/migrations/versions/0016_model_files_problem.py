"""Model versions whose files changed on disk: why they cannot be used

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("files_problem", sa.Text(), nullable=True))


def downgrade():
    # Only a finding goes: the next load hashes the files again and finds it again.
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("files_problem")
