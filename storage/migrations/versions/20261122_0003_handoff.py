"""handoff: operators, sessions, canned replies, queue columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:51:24.765085
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("shortcut", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_canned_replies")),
        sa.UniqueConstraint("shortcut", name=op.f("uq_canned_replies_shortcut")),
    )
    op.create_table(
        "operators",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("login", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("groups", sa.JSON(), nullable=False),
        sa.Column("max_chats", sa.Integer(), nullable=False),
        sa.Column("telegram_user_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operators")),
        sa.UniqueConstraint("login", name=op.f("uq_operators_login")),
        sa.UniqueConstraint("telegram_user_id", name=op.f("uq_operators_telegram_user_id")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column(
            "operator_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["operators.id"],
            name=op.f("fk_console_sessions_operator_id_operators"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_console_sessions_operator_id"), ["operator_id"], unique=False
        )

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("first_response_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("operator_replied_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("handoff_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("declined_by", sa.JSON(), nullable=False, server_default="[]")
        )
        batch_op.add_column(sa.Column("resolution", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("csat", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("csat_comment", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("nps", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("topic_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_conversations_operator", ["operator_id", "state"], unique=False)
        batch_op.create_index(
            "ix_conversations_queue", ["state", "skill_group", "queued_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_conversations_queue")
        batch_op.drop_index("ix_conversations_operator")
        batch_op.drop_column("topic_id")
        batch_op.drop_column("nps")
        batch_op.drop_column("csat_comment")
        batch_op.drop_column("csat")
        batch_op.drop_column("resolution")
        batch_op.drop_column("declined_by")
        batch_op.drop_column("priority")
        batch_op.drop_column("handoff_reason")
        batch_op.drop_column("operator_replied_at")
        batch_op.drop_column("first_response_at")
        batch_op.drop_column("assigned_at")
        batch_op.drop_column("queued_at")

    with op.batch_alter_table("console_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_sessions_operator_id"))

    op.drop_table("console_sessions")
    op.drop_table("operators")
    op.drop_table("canned_replies")
