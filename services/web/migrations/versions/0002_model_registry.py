"""model registry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:50:15.133193

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("source_kind", sa.String(length=16), nullable=False),
        sa.Column("source_sha256", sa.String(length=64), nullable=True),
        sa.Column("artifact", sa.String(length=300), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("architecture", sa.String(length=100), nullable=False),
        sa.Column("model_type", sa.String(length=50), nullable=False),
        sa.Column("parameter_count", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("tokenizer", sa.String(length=100), nullable=False),
        sa.Column("context_length", sa.Integer(), nullable=True),
        sa.Column("prompt_format", sa.String(length=16), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("generation_settings", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("imported_by_id", sa.Integer(), nullable=True),
        sa.Column("imported_by_label", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["imported_by_id"],
            ["users.id"],
            name=op.f("fk_model_versions_imported_by_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("artifact", name=op.f("uq_model_versions_artifact")),
        sa.UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
        sa.UniqueConstraint("sha256", name=op.f("uq_model_versions_sha256")),
    )
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_model_versions_name"), ["name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_model_versions_source_sha256"), ["source_sha256"], unique=False
        )

    op.create_table(
        "model_aliases",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=100), nullable=False),
        sa.Column("alias", sa.String(length=50), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["model_versions.id"],
            name=op.f("fk_model_aliases_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_aliases")),
        sa.UniqueConstraint("model_name", "alias", name="uq_model_aliases_name_alias"),
    )
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_aliases_version_id"), ["version_id"], unique=False
        )
        batch_op.create_index(
            "uq_model_aliases_one_production",
            ["alias"],
            unique=True,
            sqlite_where=sa.text("alias = 'production'"),
            postgresql_where=sa.text("alias = 'production'"),
        )


def downgrade():
    bind = op.get_bind()
    held = {
        t: bind.scalar(sa.select(sa.func.count()).select_from(sa.table(t)))
        for t in ("model_versions", "model_aliases")
    }
    if any(held.values()):
        counts = ", ".join(f"{n} in {t}" for t, n in held.items() if n)
        raise RuntimeError(
            f"Downgrading drops the model registry, which hold rows ({counts}); "
            "they would be lost. Delete them first."
        )
    with op.batch_alter_table("model_aliases", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_model_aliases_one_production",
            sqlite_where=sa.text("alias = 'production'"),
            postgresql_where=sa.text("alias = 'production'"),
        )
        batch_op.drop_index(batch_op.f("ix_model_aliases_version_id"))

    op.drop_table("model_aliases")
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_model_versions_source_sha256"))
        batch_op.drop_index(batch_op.f("ix_model_versions_name"))

    op.drop_table("model_versions")
