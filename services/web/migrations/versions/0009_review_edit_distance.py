"""Reviews keep the edit distance from the machine text to the editor's final text

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 13:30:00

"""

import sqlalchemy as sa
from alembic import op
from rapidfuzz.distance import Levenshtein

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade():
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("edit_distance", sa.Float(), nullable=True))
    # Reviews written before: accepted ones are 0, edited ones are measured, rejected
    # ones have no final text.
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE reviews SET edit_distance = 0 WHERE decision = 'accepted'"))
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
        connection.execute(
            sa.text("UPDATE reviews SET edit_distance = :distance WHERE id = :id"),
            [
                {"id": id_, "distance": Levenshtein.normalized_distance(machine or "", final or "")}
                for id_, machine, final in rows
            ],
        )
        last = rows[-1][0]


def downgrade():
    # The distance is measured again from the texts on the way back up.
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("edit_distance")
