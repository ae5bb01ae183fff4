"""content versions and the editors' draft in the database

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "content_blobs",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_content_blobs")),
    )
    op.create_table(
        "content_versions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("parent_id", BIG_ID, nullable=True),
        sa.Column("restored_from", BIG_ID, nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_content_versions")),
    )
    op.create_table(
        "content_version_files",
        sa.Column("version_id", BIG_ID, nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["content_blobs.sha256"],
            name=op.f("fk_content_version_files_sha256_content_blobs"),
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["content_versions.id"],
            name=op.f("fk_content_version_files_version_id_content_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("version_id", "path", name=op.f("pk_content_version_files")),
    )
    op.create_table(
        "content_draft_files",
        sa.Column("path", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["sha256"],
            ["content_blobs.sha256"],
            name=op.f("fk_content_draft_files_sha256_content_blobs"),
        ),
        sa.PrimaryKeyConstraint("path", name=op.f("pk_content_draft_files")),
    )
    op.create_table(
        "content_test_runs",
        sa.Column("fingerprint", sa.String(length=16), nullable=False),
        sa.Column("passed", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("run_by", sa.String(length=64), nullable=False),
        sa.Column("run_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_content_test_runs")),
    )


def downgrade() -> None:
    op.drop_table("content_test_runs")
    op.drop_table("content_draft_files")
    op.drop_table("content_version_files")
    op.drop_table("content_versions")
    op.drop_table("content_blobs")
