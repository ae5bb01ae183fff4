"""tickets and demo backend

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:23:04.270143
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "demo_outages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ref", sa.String(length=32), nullable=True),
        sa.Column("area", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_outages")),
        sa.UniqueConstraint("ref", name=op.f("uq_demo_outages_ref")),
    )
    with op.batch_alter_table("demo_outages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_demo_outages_area"), ["area"], unique=False)

    op.create_table(
        "demo_tariffs",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("price", sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
        sa.Column("summary", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("sort", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_demo_tariffs")),
    )
    op.create_table(
        "demo_customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=16), nullable=False),
        sa.Column("account", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column("area", sa.String(length=100), nullable=True),
        sa.Column("balance", sa.Numeric(precision=12, scale=2, asdecimal=False), nullable=False),
        sa.Column("tariff_code", sa.String(length=16), nullable=False),
        sa.Column("home_tariff_code", sa.String(length=16), nullable=True),
        sa.Column("promised_until", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["home_tariff_code"],
            ["demo_tariffs.code"],
            name=op.f("fk_demo_customers_home_tariff_code_demo_tariffs"),
        ),
        sa.ForeignKeyConstraint(
            ["tariff_code"],
            ["demo_tariffs.code"],
            name=op.f("fk_demo_customers_tariff_code_demo_tariffs"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_customers")),
        sa.UniqueConstraint("account", name=op.f("uq_demo_customers_account")),
        sa.UniqueConstraint("phone", name=op.f("uq_demo_customers_phone")),
    )
    op.create_table(
        "demo_tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["demo_customers.id"],
            name=op.f("fk_demo_tickets_customer_id_demo_customers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_demo_tickets")),
        sa.UniqueConstraint("number", name=op.f("uq_demo_tickets_number")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_tickets_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"], name=op.f("fk_tickets_subscriber_id_subscribers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
        sa.UniqueConstraint("number", name=op.f("uq_tickets_number")),
    )
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tickets_subscriber_id"), ["subscriber_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tickets_subscriber_id"))
        batch_op.drop_index("ix_tickets_status_due")

    op.drop_table("tickets")
    op.drop_table("demo_tickets")
    op.drop_table("demo_customers")
    op.drop_table("demo_tariffs")
    with op.batch_alter_table("demo_outages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_demo_outages_area"))

    op.drop_table("demo_outages")
